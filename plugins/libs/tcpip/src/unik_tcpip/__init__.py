"""unik's own TCP/IP stack: wire formats, an IPv4 interface and TCP/UDP sockets.

Layout (after smoltcp): :mod:`unik_tcpip.wire` holds stateless zero-copy packet views
that parse and emit; :mod:`unik_tcpip.iface` the interface (ARP cache, routing, IPv4
input/output, fragment reassembly, ICMP, dispatch); :mod:`unik_tcpip.tcp` and
:mod:`unik_tcpip.udp` the sockets; :mod:`unik_tcpip.stack` puts them together as a
:class:`unik.devices.Stack`.
"""

__version__ = "0.1.0"
