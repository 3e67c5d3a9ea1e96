//! A small nf_tables client over netlink (NETLINK_NETFILTER), enough for the hostPort rules:
//! a table of peapod's own with base chains and rules built from a handful of expressions
//! (payload, meta, cmp, bitwise, ct, fib, immediate, nat, masq), created in one transaction
//! and deleted by name. No `nft` binary and no libnftnl: the messages are encoded here, after
//! the kernel's uapi (include/uapi/linux/netfilter/nf_tables.h) and what libnftnl sends.
//!
//! Encoding is pure ([`Batch`]) and unit-tested; [`NftSocket`] only sends a batch and reads
//! one acknowledgement per message.

use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Duration;

use nix::sys::socket::{
    bind, recv, send, setsockopt, socket, sockopt, AddressFamily, MsgFlags, NetlinkAddr, SockFlag,
    SockProtocol, SockType,
};
use nix::sys::time::TimeVal;

// netlink and nfnetlink framing [linux/netlink.h, linux/netfilter/nfnetlink.h].
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_CREATE: u16 = 0x400;
const NLM_F_APPEND: u16 = 0x800;
const NLMSG_ERROR: u16 = 0x2;
const NLA_F_NESTED: u16 = 0x8000;
const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
const NFNL_MSG_BATCH_END: u16 = 0x11;
const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFNETLINK_V0: u8 = 0;
/// The `ip` family of nftables tables (NFPROTO_IPV4).
pub const NFPROTO_IPV4: u8 = 2;

// nf_tables messages and attributes [linux/netfilter/nf_tables.h].
const NFT_MSG_NEWTABLE: u16 = 0;
const NFT_MSG_DELTABLE: u16 = 2;
const NFT_MSG_NEWCHAIN: u16 = 3;
const NFT_MSG_NEWRULE: u16 = 6;
const NFTA_TABLE_NAME: u16 = 1;
const NFTA_CHAIN_TABLE: u16 = 1;
const NFTA_CHAIN_NAME: u16 = 3;
const NFTA_CHAIN_HOOK: u16 = 4;
const NFTA_CHAIN_POLICY: u16 = 5;
const NFTA_CHAIN_TYPE: u16 = 7;
const NFTA_HOOK_HOOKNUM: u16 = 1;
const NFTA_HOOK_PRIORITY: u16 = 2;
const NFTA_RULE_TABLE: u16 = 1;
const NFTA_RULE_CHAIN: u16 = 2;
const NFTA_RULE_EXPRESSIONS: u16 = 4;
const NFTA_LIST_ELEM: u16 = 1;
const NFTA_EXPR_NAME: u16 = 1;
const NFTA_EXPR_DATA: u16 = 2;
const NFTA_DATA_VALUE: u16 = 1;
const NFTA_DATA_VERDICT: u16 = 2;
const NFTA_VERDICT_CODE: u16 = 1;
/// The verdict register and the first data register.
const NFT_REG_VERDICT: u32 = 0;
const NFT_REG_1: u32 = 1;
const NFT_REG_2: u32 = 2;
const NF_ACCEPT: u32 = 1;
const NF_DROP: u32 = 0;

/// Netfilter hooks [linux/netfilter.h] and the priorities nft calls dstnat and srcnat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hook {
    Prerouting,
    Forward,
    Output,
    Postrouting,
}

impl Hook {
    fn number(self) -> u32 {
        match self {
            Hook::Prerouting => 0,
            Hook::Forward => 2,
            Hook::Output => 3,
            Hook::Postrouting => 4,
        }
    }
}

pub const PRIORITY_DSTNAT: i32 = -100;
pub const PRIORITY_FILTER: i32 = 0;
pub const PRIORITY_SRCNAT: i32 = 100;

/// A base chain: where it hooks and what kind of chain it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain {
    pub name: String,
    /// `nat` or `filter`.
    pub kind: &'static str,
    pub hook: Hook,
    pub priority: i32,
}

/// What a rule's expressions match or do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Match {
    /// The layer-4 protocol number (6 TCP, 17 UDP, 132 SCTP).
    L4Proto(u8),
    /// The destination port of TCP, UDP or SCTP (all at offset 2 of their header).
    DestPort(u16),
    DestAddr(Ipv4Addr),
    /// The source address within a prefix.
    SourceNet(Ipv4Addr, u8),
    /// `fib daddr type local`: addressed to one of this host's addresses.
    DestIsLocal,
    /// The input (`iifname`) or output (`oifname`) interface, equal or not.
    InputInterface(String, bool),
    OutputInterface(String, bool),
    /// `ct status dnat`, or its negation: the connection was (not) destination-NATed.
    Dnatted(bool),
}

/// What a rule does once everything matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Dnat(Ipv4Addr, u16),
    Masquerade,
    Drop,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub chain: String,
    pub matches: Vec<Match>,
    pub action: Action,
}

/// A netlink attribute list under construction.
#[derive(Debug, Default, Clone)]
struct Attrs(Vec<u8>);

impl Attrs {
    fn put(&mut self, kind: u16, payload: &[u8]) -> &mut Self {
        let len = 4 + payload.len();
        self.0
            .extend_from_slice(&u16::try_from(len).unwrap_or(u16::MAX).to_ne_bytes());
        self.0.extend_from_slice(&kind.to_ne_bytes());
        self.0.extend_from_slice(payload);
        self.0.resize(self.0.len().next_multiple_of(4), 0);
        self
    }
    fn strz(&mut self, kind: u16, s: &str) -> &mut Self {
        let mut b = s.as_bytes().to_vec();
        b.push(0);
        self.put(kind, &b)
    }
    fn be32(&mut self, kind: u16, v: u32) -> &mut Self {
        self.put(kind, &v.to_be_bytes())
    }
    fn nested(&mut self, kind: u16, inner: Attrs) -> &mut Self {
        self.put(kind | NLA_F_NESTED, &inner.0)
    }
}

fn data(value: &[u8]) -> Attrs {
    let mut a = Attrs::default();
    a.put(NFTA_DATA_VALUE, value);
    a
}

/// One expression: its name and its attributes.
fn expr(name: &str, attrs: Attrs) -> Attrs {
    let mut e = Attrs::default();
    e.strz(NFTA_EXPR_NAME, name).nested(NFTA_EXPR_DATA, attrs);
    e
}

fn cmp(op: u32, value: &[u8]) -> Attrs {
    let mut a = Attrs::default();
    a.be32(1, NFT_REG_1) // NFTA_CMP_SREG
        .be32(2, op) // NFTA_CMP_OP: 0 eq, 1 neq
        .nested(3, data(value)); // NFTA_CMP_DATA
    expr("cmp", a)
}

fn payload(base: u32, offset: u32, len: u32) -> Attrs {
    let mut a = Attrs::default();
    a.be32(1, NFT_REG_1) // NFTA_PAYLOAD_DREG
        .be32(2, base) // NFTA_PAYLOAD_BASE: 1 network, 2 transport header
        .be32(3, offset)
        .be32(4, len);
    expr("payload", a)
}

fn meta(key: u32) -> Attrs {
    let mut a = Attrs::default();
    a.be32(1, NFT_REG_1).be32(2, key); // NFTA_META_DREG, NFTA_META_KEY
    expr("meta", a)
}

fn bitwise(len: u32, mask: &[u8]) -> Attrs {
    let mut a = Attrs::default();
    a.be32(1, NFT_REG_1) // NFTA_BITWISE_SREG
        .be32(2, NFT_REG_1) // NFTA_BITWISE_DREG
        .be32(3, len)
        .nested(4, data(mask)) // NFTA_BITWISE_MASK
        .nested(5, data(&vec![0; mask.len()])); // NFTA_BITWISE_XOR
    expr("bitwise", a)
}

fn immediate(reg: u32, value: &[u8]) -> Attrs {
    let mut a = Attrs::default();
    a.be32(1, reg).nested(2, data(value)); // NFTA_IMMEDIATE_DREG, NFTA_IMMEDIATE_DATA
    expr("immediate", a)
}

fn verdict(code: u32) -> Attrs {
    let mut v = Attrs::default();
    v.be32(NFTA_VERDICT_CODE, code);
    let mut d = Attrs::default();
    d.nested(NFTA_DATA_VERDICT, v);
    let mut a = Attrs::default();
    a.be32(1, NFT_REG_VERDICT).nested(2, d);
    expr("immediate", a)
}

/// An interface name as nft compares it: IFNAMSIZ bytes, NUL padded.
fn ifname(name: &str) -> [u8; 16] {
    let mut b = [0u8; 16];
    for (d, s) in b.iter_mut().zip(name.as_bytes().iter().take(15)) {
        *d = *s;
    }
    b
}

const META_IIFNAME: u32 = 6;
const META_OIFNAME: u32 = 7;
const META_L4PROTO: u32 = 16;
const PAYLOAD_NETWORK: u32 = 1;
const PAYLOAD_TRANSPORT: u32 = 2;
const CT_STATUS: u32 = 2;
/// IPS_DST_NAT of the conntrack status bits.
const CT_STATUS_DST_NAT: u32 = 1 << 5;
/// RTN_LOCAL, what `fib daddr type` yields for this host's addresses.
const RTN_LOCAL: u32 = 2;
const FIB_RESULT_ADDRTYPE: u32 = 3;
const FIB_F_DADDR: u32 = 2;

/// The expressions of one match.
fn match_exprs(m: &Match) -> Vec<Attrs> {
    match m {
        Match::L4Proto(p) => vec![meta(META_L4PROTO), cmp(0, &[*p])],
        Match::DestPort(port) => vec![
            payload(PAYLOAD_TRANSPORT, 2, 2),
            cmp(0, &port.to_be_bytes()),
        ],
        Match::DestAddr(ip) => vec![payload(PAYLOAD_NETWORK, 16, 4), cmp(0, &ip.octets())],
        Match::SourceNet(ip, prefix) => {
            let mask = u32::MAX
                .checked_shl(32 - u32::from(*prefix))
                .unwrap_or(0)
                .to_be_bytes();
            let net = (u32::from(*ip) & u32::from_be_bytes(mask)).to_be_bytes();
            vec![
                payload(PAYLOAD_NETWORK, 12, 4),
                bitwise(4, &mask),
                cmp(0, &net),
            ]
        }
        Match::DestIsLocal => {
            let mut a = Attrs::default();
            a.be32(1, NFT_REG_1) // NFTA_FIB_DREG
                .be32(2, FIB_RESULT_ADDRTYPE)
                .be32(3, FIB_F_DADDR);
            vec![expr("fib", a), cmp(0, &RTN_LOCAL.to_ne_bytes())]
        }
        Match::InputInterface(name, eq) | Match::OutputInterface(name, eq) => {
            let key = if matches!(m, Match::InputInterface(..)) {
                META_IIFNAME
            } else {
                META_OIFNAME
            };
            vec![meta(key), cmp(u32::from(!eq), &ifname(name))]
        }
        Match::Dnatted(yes) => {
            let mut a = Attrs::default();
            a.be32(1, NFT_REG_1).be32(2, CT_STATUS); // NFTA_CT_DREG, NFTA_CT_KEY
            vec![
                expr("ct", a),
                bitwise(4, &CT_STATUS_DST_NAT.to_ne_bytes()),
                cmp(u32::from(*yes), &0u32.to_ne_bytes()),
            ]
        }
    }
}

fn action_exprs(a: &Action) -> Vec<Attrs> {
    match a {
        Action::Dnat(ip, port) => {
            let mut nat = Attrs::default();
            nat.be32(1, 1) // NFTA_NAT_TYPE: NFT_NAT_DNAT
                .be32(2, u32::from(NFPROTO_IPV4)) // NFTA_NAT_FAMILY
                .be32(3, NFT_REG_1) // NFTA_NAT_REG_ADDR_MIN
                .be32(5, NFT_REG_2); // NFTA_NAT_REG_PROTO_MIN
            vec![
                immediate(NFT_REG_1, &ip.octets()),
                immediate(NFT_REG_2, &port.to_be_bytes()),
                expr("nat", nat),
            ]
        }
        Action::Masquerade => vec![expr("masq", Attrs::default())],
        Action::Drop => vec![verdict(NF_DROP)],
    }
}

/// One nf_tables transaction: messages between a batch begin and end.
#[derive(Debug, Default)]
pub struct Batch {
    buf: Vec<u8>,
    seq: u32,
    /// Sequence numbers of the messages that ask for an acknowledgement.
    acked: Vec<u32>,
}

impl Batch {
    pub fn new() -> Batch {
        let mut b = Batch {
            seq: 1,
            ..Default::default()
        };
        b.message(NFNL_MSG_BATCH_BEGIN, NLM_F_REQUEST, 0, &Attrs::default());
        b
    }

    fn message(&mut self, kind: u16, flags: u16, family: u8, attrs: &Attrs) {
        let seq = self.seq;
        self.seq += 1;
        let len = 16 + 4 + attrs.0.len();
        self.buf
            .extend_from_slice(&u32::try_from(len).unwrap_or(u32::MAX).to_ne_bytes());
        self.buf.extend_from_slice(&kind.to_ne_bytes());
        self.buf.extend_from_slice(&flags.to_ne_bytes());
        self.buf.extend_from_slice(&seq.to_ne_bytes());
        self.buf.extend_from_slice(&0u32.to_ne_bytes());
        // nfgenmsg: family, version, res_id (big-endian; the subsystem for batch messages).
        self.buf.push(family);
        self.buf.push(NFNETLINK_V0);
        let res_id = if kind == NFNL_MSG_BATCH_BEGIN || kind == NFNL_MSG_BATCH_END {
            NFNL_SUBSYS_NFTABLES
        } else {
            0
        };
        self.buf.extend_from_slice(&res_id.to_be_bytes());
        self.buf.extend_from_slice(&attrs.0);
        if flags & NLM_F_ACK != 0 {
            self.acked.push(seq);
        }
    }

    fn nft(&mut self, cmd: u16, flags: u16, attrs: &Attrs) {
        let kind = (NFNL_SUBSYS_NFTABLES << 8) | cmd;
        self.message(kind, NLM_F_REQUEST | NLM_F_ACK | flags, NFPROTO_IPV4, attrs);
    }

    /// `add table ip NAME` (no error when it exists).
    pub fn add_table(&mut self, table: &str) -> &mut Self {
        let mut a = Attrs::default();
        a.strz(NFTA_TABLE_NAME, table);
        self.nft(NFT_MSG_NEWTABLE, NLM_F_CREATE, &a);
        self
    }

    /// `delete table ip NAME`: with everything in it.
    pub fn delete_table(&mut self, table: &str) -> &mut Self {
        let mut a = Attrs::default();
        a.strz(NFTA_TABLE_NAME, table);
        self.nft(NFT_MSG_DELTABLE, 0, &a);
        self
    }

    /// A base chain with policy accept.
    pub fn add_chain(&mut self, table: &str, chain: &Chain) -> &mut Self {
        let mut hook = Attrs::default();
        hook.be32(NFTA_HOOK_HOOKNUM, chain.hook.number())
            .put(NFTA_HOOK_PRIORITY, &chain.priority.to_be_bytes());
        let mut a = Attrs::default();
        a.strz(NFTA_CHAIN_TABLE, table)
            .strz(NFTA_CHAIN_NAME, &chain.name)
            .nested(NFTA_CHAIN_HOOK, hook)
            .be32(NFTA_CHAIN_POLICY, NF_ACCEPT)
            .strz(NFTA_CHAIN_TYPE, chain.kind);
        self.nft(NFT_MSG_NEWCHAIN, NLM_F_CREATE, &a);
        self
    }

    pub fn add_rule(&mut self, table: &str, rule: &Rule) -> &mut Self {
        let mut list = Attrs::default();
        let exprs = rule
            .matches
            .iter()
            .flat_map(match_exprs)
            .chain(action_exprs(&rule.action));
        for e in exprs {
            list.nested(NFTA_LIST_ELEM, e);
        }
        let mut a = Attrs::default();
        a.strz(NFTA_RULE_TABLE, table)
            .strz(NFTA_RULE_CHAIN, &rule.chain)
            .nested(NFTA_RULE_EXPRESSIONS, list);
        self.nft(NFT_MSG_NEWRULE, NLM_F_CREATE | NLM_F_APPEND, &a);
        self
    }

    /// The bytes to send, batch end included.
    fn finish(mut self) -> (Vec<u8>, Vec<u32>) {
        self.message(NFNL_MSG_BATCH_END, NLM_F_REQUEST, 0, &Attrs::default());
        (self.buf, self.acked)
    }
}

/// How long to wait for the kernel's answer to a batch.
const REPLY_TIMEOUT: Duration = Duration::from_secs(5);

/// Sends `batch` as one transaction and waits for every acknowledgement; the first error
/// the kernel reports (the transaction is then undone as a whole).
pub fn commit(batch: Batch) -> io::Result<()> {
    let (bytes, acked) = batch.finish();
    let fd: OwnedFd = socket(
        AddressFamily::Netlink,
        SockType::Raw,
        SockFlag::SOCK_CLOEXEC,
        SockProtocol::NetlinkNetFilter,
    )?;
    bind(fd.as_raw_fd(), &NetlinkAddr::new(0, 0))?;
    let timeout = TimeVal::new(REPLY_TIMEOUT.as_secs() as i64, 0);
    setsockopt(&fd, sockopt::ReceiveTimeout, &timeout)?;
    send(fd.as_raw_fd(), &bytes, MsgFlags::empty())?;
    let mut pending = acked;
    let mut first_error = None;
    let mut buf = vec![0u8; 64 * 1024];
    while !pending.is_empty() {
        let n = recv(fd.as_raw_fd(), &mut buf, MsgFlags::empty())?;
        for (kind, seq, error) in parse_replies(&buf[..n]) {
            if kind != NLMSG_ERROR {
                continue;
            }
            pending.retain(|s| *s != seq);
            if error != 0 && first_error.is_none() {
                first_error = Some(io::Error::from_raw_os_error(-error));
            }
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// (type, sequence, error) of each netlink message in `buf`; error is 0 for other types.
fn parse_replies(buf: &[u8]) -> Vec<(u16, u32, i32)> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + 16 <= buf.len() {
        let word = |i: usize| -> [u8; 4] {
            let mut w = [0u8; 4];
            w.copy_from_slice(&buf[i..i + 4]);
            w
        };
        let len = u32::from_ne_bytes(word(at)) as usize;
        let kind = u16::from_ne_bytes([buf[at + 4], buf[at + 5]]);
        let seq = u32::from_ne_bytes(word(at + 8));
        let error = if kind == NLMSG_ERROR && at + 20 <= buf.len() {
            i32::from_ne_bytes(word(at + 16))
        } else {
            0
        };
        out.push((kind, seq, error));
        if len < 16 {
            break;
        }
        at += len.next_multiple_of(4);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_are_padded_and_nested() {
        let mut a = Attrs::default();
        a.strz(1, "nat");
        assert_eq!(a.0, [8, 0, 1, 0, b'n', b'a', b't', 0]);
        let mut outer = Attrs::default();
        outer.nested(4, a);
        assert_eq!(&outer.0[..4], &[12, 0, 4, 0x80]);
    }

    #[test]
    fn batches_frame_every_message_and_ack_the_nftables_ones() {
        let mut b = Batch::new();
        b.add_table("t");
        let (bytes, acked) = b.finish();
        // begin (20 bytes), newtable (20 + 8), end (20)
        assert_eq!(bytes.len(), 20 + 28 + 20);
        assert_eq!(acked, [2]);
        // The table message: type (10 << 8) | NEWTABLE, request | ack | create, family ip.
        assert_eq!(&bytes[20 + 4..20 + 6], &0x0a00u16.to_ne_bytes());
        assert_eq!(
            u16::from_ne_bytes([bytes[26], bytes[27]]),
            NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE
        );
        assert_eq!(bytes[20 + 16], NFPROTO_IPV4);
        // Batch begin carries the subsystem in its res_id, big-endian.
        assert_eq!(&bytes[18..20], &[0, 10]);
    }

    #[test]
    fn port_and_prefix_matches_load_and_compare_network_order() {
        let port = match_exprs(&Match::DestPort(8080));
        assert_eq!(port.len(), 2);
        let cmp_bytes = &port[1].0;
        let needle = 8080u16.to_be_bytes();
        assert!(cmp_bytes.windows(2).any(|w| w == needle));
        let net = match_exprs(&Match::SourceNet(Ipv4Addr::new(10, 88, 3, 4), 16));
        assert_eq!(net.len(), 3);
        assert!(net[1].0.windows(4).any(|w| w == [255, 255, 0, 0]));
        assert!(net[2].0.windows(4).any(|w| w == [10, 88, 0, 0]));
    }

    #[test]
    fn replies_are_read_by_sequence() {
        let mut reply = Vec::new();
        for (seq, err) in [(2u32, 0i32), (3, -libc::ENOENT)] {
            reply.extend_from_slice(&36u32.to_ne_bytes());
            reply.extend_from_slice(&NLMSG_ERROR.to_ne_bytes());
            reply.extend_from_slice(&0u16.to_ne_bytes());
            reply.extend_from_slice(&seq.to_ne_bytes());
            reply.extend_from_slice(&0u32.to_ne_bytes());
            reply.extend_from_slice(&err.to_ne_bytes());
            reply.extend_from_slice(&[0u8; 16]);
        }
        assert_eq!(
            parse_replies(&reply),
            [(NLMSG_ERROR, 2, 0), (NLMSG_ERROR, 3, -libc::ENOENT)]
        );
    }
}
