"""The kernel's numbers netlens speaks: netlink, rtnetlink, nf_tables, namespaces.

Defined once, here, for every user: discovery's codec and its helper process,
the counter sampler, the NAT probe and the runtime's request builder. A number
written twice drifts (the project had six copies before); the C walker
(walk.c, walk_decode.c) takes its numbers from the kernel headers themselves.

Only plain ints (no imports at all): the helper process loads this module
before its first namespace, and ``netlens run`` counts milliseconds. The names
are the kernel headers' names, so a reader can grep the uapi headers for them.
"""

from __future__ import annotations

# --- namespaces (linux/sched.h, linux/nsfs.h) ---------------------------------------
CLONE_NEWNET = 0x40000000
NS_GET_NSTYPE = 0xB703
"""ioctl on an nsfs fd: the CLONE_NEW* type of the namespace it refers to."""

# --- sockets (linux/netlink.h, linux/socket.h) --------------------------------------
AF_NETLINK = 16
NETLINK_ROUTE = 0
NETLINK_NETFILTER = 12
NETLINK_CAP_ACK = 10
NETLINK_EXT_ACK = 11
SOL_NETLINK = 270
NETLINK_ADD_MEMBERSHIP = 1
NETLINK_LISTEN_ALL_NSID = 8

# --- netlink messages (linux/netlink.h) ---------------------------------------------
NLMSG_NOOP = 1
NLMSG_ERROR = 2
NLMSG_DONE = 3
NLM_F_REQUEST = 0x1
NLM_F_MULTI = 0x2
NLM_F_ACK = 0x4
NLM_F_DUMP_INTR = 0x10
NLM_F_REPLACE = 0x100
NLM_F_EXCL = 0x200
NLM_F_ACK_TLVS = 0x200
"""In an NLMSG_ERROR reply: extended-ack attributes follow (same bit as EXCL)."""
NLM_F_CREATE = 0x400
NLM_F_DUMP = 0x300
NLA_F_NESTED = 0x8000
NLMSGERR_ATTR_MSG = 1

# --- rtnetlink message types (linux/rtnetlink.h) ------------------------------------
RTM_NEWLINK = 16
RTM_DELLINK = 17
RTM_GETLINK = 18
RTM_NEWADDR = 20
RTM_GETADDR = 22
RTM_NEWROUTE = 24
RTM_GETROUTE = 26
RTM_NEWNEIGH = 28
RTM_GETNEIGH = 30
RTM_NEWRULE = 32
RTM_GETRULE = 34
RTM_NEWQDISC = 36
RTM_GETQDISC = 38
RTM_NEWTFILTER = 44
RTM_GETTFILTER = 46
RTM_NEWNETCONF = 80
RTM_GETNETCONF = 82
RTM_NEWNSID = 88
RTM_DELNSID = 89
RTM_GETNSID = 90
RTM_NEWSTATS = 92
RTM_GETSTATS = 94
RTM_F_CLONED = 0x200

# --- multicast groups (linux/rtnetlink.h) ---------------------------------------------
RTMGRP_LINK = 0x1
RTNLGRP_NSID = 28

TC_H_CLSACT_INGRESS = 0xFFFFFFF2
"""tc's "ingress" parent: the filters of an ingress qdisc, or of clsact's ingress hook."""

# --- address families and interface flags (linux/socket.h, linux/if.h) -------------
AF_UNSPEC = 0
AF_INET = 2
AF_BRIDGE = 7
AF_INET6 = 10
IFF_UP = 0x1
IFF_LOOPBACK = 0x8
IFF_LOWER_UP = 0x10000

# --- link attributes (linux/if_link.h, linux/veth.h) --------------------------------
IFLA_ADDRESS = 1
IFLA_IFNAME = 3
IFLA_MTU = 4
IFLA_LINK = 5
IFLA_MASTER = 10
IFLA_OPERSTATE = 16
IFLA_LINKINFO = 18
IFLA_NET_NS_PID = 19
IFLA_IFALIAS = 20
IFLA_STATS64 = 23
IFLA_AF_SPEC = 26
IFLA_GROUP = 27
IFLA_NET_NS_FD = 28
IFLA_CARRIER = 33
IFLA_LINK_NETNSID = 37
IFLA_PARENT_DEV_NAME = 56
IFLA_INFO_KIND = 1
IFLA_INFO_DATA = 2
IFLA_INFO_SLAVE_KIND = 4
IFLA_INFO_SLAVE_DATA = 5
IFLA_INET6_ADDR_GEN_MODE = 8
IN6_ADDR_GEN_MODE_NONE = 1
VETH_INFO_PEER = 1
IFLA_STATS_LINK_64 = 1
"""RTM_GETSTATS filter bit and attribute: struct rtnl_link_stats64."""

# --- address, route and neighbour attributes and values -----------------------------
IFA_ADDRESS = 1
IFA_LOCAL = 2
IFA_BROADCAST = 4
RTA_DST = 1
RTA_OIF = 4
RTA_GATEWAY = 5
RT_TABLE_MAIN = 254
RTPROT_BOOT = 3
RT_SCOPE_UNIVERSE = 0
RT_SCOPE_LINK = 253
RTN_UNICAST = 1
FIB_RULE_INVERT = 0x2
NDA_CACHEINFO = 3
NUD_NOARP = 0x40
NUD_PERMANENT = 0x80
NTF_SELF = 0x02
NTF_MASTER = 0x04
NTF_EXT_LEARNED = 0x10
NTF_OFFLOADED = 0x20
NTF_STICKY = 0x40
NTF_ROUTER = 0x80

# --- namespace ids and netconf (linux/net_namespace.h, linux/netconf.h) ------------
NETNSA_NSID = 1
NETNSA_FD = 3
NETCONFA_IFINDEX = 1

# --- nf_tables (linux/netfilter/nfnetlink.h, linux/netfilter/nf_tables.h) ----------
NFNL_SUBSYS_NFTABLES = 10
NFT_MSG_NEWTABLE = 0
NFT_MSG_GETTABLE = 1
NFTA_TABLE_NAME = 1
NFT_MSG_NEWCHAIN = 3
NFT_MSG_GETCHAIN = 4
NFTA_CHAIN_TABLE = 1
NFTA_CHAIN_NAME = 3
NFTA_CHAIN_HOOK = 4
NFTA_CHAIN_POLICY = 5
NFTA_CHAIN_TYPE = 7
NFTA_HOOK_HOOKNUM = 1

# --- errno values the codec tells apart ---------------------------------------------
EBUSY = 16

# --- route, neighbour and netconf queries (linux/rtnetlink.h, neighbour.h, netconf.h) ---
RTA_SRC = 2
RTA_IIF = 3
RTA_PRIORITY = 6
RTA_PREFSRC = 7
RTA_METRICS = 8
RTA_TABLE = 15
RTA_MARK = 16
RTA_VIA = 18
RTA_IP_PROTO = 27
RTA_SPORT = 28
RTA_DPORT = 29
RTAX_MTU = 2
RTM_F_LOOKUP_TABLE = 0x1000
RTM_F_FIB_MATCH = 0x2000
NDA_DST = 1
NDA_LLADDR = 2
NDA_VLAN = 5
NDA_MASTER = 9
NETCONFA_FORWARDING = 2
NETCONFA_RP_FILTER = 3

ROUTE_TYPES = (
    "unspec", "unicast", "local", "broadcast", "anycast", "multicast",
    "blackhole", "unreachable", "prohibit", "throw", "nat", "xresolve",
)  # fmt: skip
"""rtm_type names, indexed by number (linux/rtnetlink.h), as ``ip route`` prints them."""

NUD_NAMES = (
    (0x01, "incomplete"),
    (0x02, "reachable"),
    (0x04, "stale"),
    (0x08, "delay"),
    (0x10, "probe"),
    (0x20, "failed"),
    (0x40, "noarp"),
    (0x80, "permanent"),
)
"""Neighbour states (linux/neighbour.h NUD_*), in the order ``ip neigh`` names them."""


def nud_state(state: int) -> str:
    """The name ``ip neigh`` prints for a neighbour's state bits."""
    for bit, name in NUD_NAMES:
        if state & bit:
            return name
    return "none"


# --- packet sockets (linux/if_packet.h, linux/if_ether.h, asm-generic/socket.h) ------
ETH_P_ALL = 0x0003
SOL_PACKET = 263
PACKET_RX_RING = 5
PACKET_STATISTICS = 6
PACKET_AUXDATA = 8
PACKET_VERSION = 10
TPACKET_V3 = 2
TP_STATUS_KERNEL = 0
TP_STATUS_USER = 1
TP_STATUS_VLAN_VALID = 1 << 4
TP_STATUS_VLAN_TPID_VALID = 1 << 6
SO_ATTACH_FILTER = 26
SO_TIMESTAMPNS = 35
SIOCGIFINDEX = 0x8933
SIOCGIFHWADDR = 0x8927
ARPHRD_ETHER = 1
ARPHRD_LOOPBACK = 772
ARPHRD_NONE = 0xFFFE
"""A device without link-layer header (tun): packets start at the IP header."""

# --- capture file link types (pcap-linktype(7)) -------------------------------------
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101
