"""IPv6 beside IPv4 on one link: :class:`Ipv6Layer` and its pieces.

:mod:`.wire` (the header, extension headers, addresses), :mod:`.icmpv6` (messages and
NDP options), :mod:`.ndp` (the neighbour cache), :mod:`.addresses` (our addresses and
source selection), :mod:`.slaac` (routers, prefixes, SLAAC, RDNSS/DNSSL), :mod:`.frag`
(fragmentation and reassembly), :mod:`.config` (``--ipv6``, ``--ipv6-gateway``) and
:mod:`.layer`, which puts them together.
"""
