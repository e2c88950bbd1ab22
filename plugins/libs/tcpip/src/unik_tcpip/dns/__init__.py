"""unik-lib-tcpip's names.

A stub resolver (:mod:`.resolver`), its wire format (:mod:`.wire`), its cache
(:mod:`.cache`), the keys that configure it (:mod:`.config`) and Happy Eyeballs
connects (:mod:`.happy`).
"""
