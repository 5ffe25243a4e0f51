//! The records the kernel programs share with user space, mirrored from `bpf/podwire.h` field by
//! field. `#[repr(C)]` with the C header's field order; the sizes are checked at compile time on
//! both sides (`_Static_assert` there, `const` asserts here), and zerocopy's derives prove each
//! type has no padding and takes any bytes, which is what aya's `Pod` asks of a map key or value.
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// `struct flow_key`: a flow's ends, ordered (`lo` sorts first), as the programs build it.
#[repr(C)]
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub(super) struct FlowKey {
    /// Addresses, IPv4 as `::ffff:a.b.c.d`.
    pub lo: [u8; 16],
    pub hi: [u8; 16],
    /// Host byte order.
    pub lo_port: u16,
    pub hi_port: u16,
    pub proto: u8,
    pub pad: [u8; 3],
}

/// `struct dir_ctr`: one direction's counters (0 = sent by `lo`).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub(super) struct DirCtr {
    pub packets: u64,
    /// IP bytes.
    pub bytes: u64,
    /// Transport payload bytes.
    pub payload: u64,
    pub retrans: u32,
    pub zero_win: u32,
    /// TCP flags seen (the low byte).
    pub flags: u32,
    pub next_seq: u32,
}

/// `struct flow_val`: a flow's counters and times in the kernel table.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub(super) struct FlowVal {
    pub d: [DirCtr; 2],
    /// `bpf_ktime_get_ns()` of the first packet.
    pub first_ns: u64,
    /// The last packet's time: exact for events, the kernel tick's for quiet packets.
    pub last_ns: u64,
    /// The interval in which the flow was last announced dirty.
    pub interval: u32,
    pub seq_valid: [u8; 2],
    pub want_ack: u8,
    pub pad: u8,
}

/// `struct ev_hdr`: the head of every ring-buffer record; `cap_len` bytes of packet (or a
/// [`FlowKey`]) follow.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub(super) struct EvHdr {
    pub ts_ns: u64,
    pub ifindex: u32,
    pub wire_len: u32,
    pub cap_len: u16,
    /// `EV_PACKET` or `EV_DIRTY`.
    pub kind: u8,
    /// 0 ingress, 1 egress.
    pub dir: u8,
    /// `EV_DIRTY`: the interval it was announced in.
    pub interval: u32,
}

/// `struct config`: the single entry of the `config` array.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub(super) struct Config {
    /// The reporting interval, advanced by user space.
    pub interval: u32,
    /// `CFG_*`.
    pub flags: u32,
}

/// `struct if_slot`: an entry of the direct-mapped interface table.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub(super) struct IfSlot {
    /// 0: free.
    pub ifindex: u32,
    /// `ROLE_*` | `IF_*`.
    pub flags: u32,
}

// Values and bits of bpf/podwire.h.
pub(super) const EV_PACKET: u8 = 1;
pub(super) const EV_DIRTY: u8 = 2;
pub(super) const CFG_ALL_EVENTS: u32 = 1;
pub(super) const CFG_FILTER_CIDR: u32 = 2;
pub(super) const CFG_FILTER_PORT: u32 = 4;
pub(super) const CFG_NO_TCP: u32 = 8;
pub(super) const CFG_NO_UDP: u32 = 16;
pub(super) const CFG_NO_DNS: u32 = 32;
pub(super) const CFG_NO_ICMP: u32 = 64;

pub(super) const ROLE_POD: u32 = 1;
pub(super) const ROLE_HOST: u32 = 2;
pub(super) const IF_NO_L2: u32 = 0x100;
pub(super) const IF_LOOPBACK: u32 = 0x200;
/// Slots of the programs' direct-mapped interface table `if_slots` (`ifindex % IF_SLOTS`); an
/// interface whose slot another attached interface holds goes into the hash `ifaces`.
pub(super) const IF_SLOTS: u32 = 16384;

/// Indexes of the programs' `stats` array.
pub(super) mod st {
    pub(in crate::ebpf) const SEEN: usize = 0;
    pub(in crate::ebpf) const DEDUP: usize = 4;
    pub(in crate::ebpf) const FILTERED: usize = 5;
    pub(in crate::ebpf) const NOT_IP: usize = 6;
    pub(in crate::ebpf) const MALFORMED: usize = 7;
    pub(in crate::ebpf) const OTHER_PROTO: usize = 8;
    pub(in crate::ebpf) const EVENT_LOST: usize = 9;
    pub(in crate::ebpf) const LOST: usize = 10;
    pub(in crate::ebpf) const DIRTY_LOST: usize = 11;
    pub(in crate::ebpf) const MAX: usize = 12;
}

const _: () = assert!(size_of::<FlowKey>() == 40);
const _: () = assert!(size_of::<DirCtr>() == 40);
const _: () = assert!(size_of::<FlowVal>() == 104);
const _: () = assert!(size_of::<EvHdr>() == 24);
const _: () = assert!(size_of::<Config>() == 8);
const _: () = assert!(size_of::<IfSlot>() == 8);

// SAFETY: each type is `#[repr(C)]`, `Copy`, without padding (`IntoBytes` is derived, which
// refuses padding) and valid for any bytes (`FromBytes`): what aya reads from and writes to a map.
#[allow(unsafe_code)]
mod pod {
    unsafe impl aya::Pod for super::FlowKey {}
    unsafe impl aya::Pod for super::FlowVal {}
    unsafe impl aya::Pod for super::Config {}
    unsafe impl aya::Pod for super::IfSlot {}
}
