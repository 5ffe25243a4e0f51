//! The live connections: keys, and a hash index from key to a slot of a slab that never moves
//! a connection once placed.
use super::conn::Conn;
use crate::decode::Segment;
use hashbrown::HashMap;
use std::net::IpAddr;

/// The connection key, 48 bytes: addresses as 128-bit integers (IPv4 in the low 32 bits, the
/// IP version in `proto`'s high bit), the endpoints ordered, and the segment flattened. With its
/// slot number an index entry is one cache line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) struct Key {
    pub(super) lo_ip: u128,
    pub(super) hi_ip: u128,
    pub(super) lo_port: u16,
    pub(super) hi_port: u16,
    pub(super) vlan: [u16; 2],
    pub(super) vni: u32,
    pub(super) proto: u8,
    pub(super) tunnel: u8,
}

pub(super) fn ip_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

impl Key {
    pub(super) fn new(proto: u8, a: (IpAddr, u16), b: (IpAddr, u16), segment: Segment) -> Key {
        let v6 = u8::from(a.0.is_ipv6()) << 7;
        let a = (ip_u128(a.0), a.1);
        let b = (ip_u128(b.0), b.1);
        let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
        Key {
            lo_ip: lo.0,
            hi_ip: hi.0,
            lo_port: lo.1,
            hi_port: hi.1,
            vlan: segment.vlan,
            vni: segment.vni,
            proto: proto | v6,
            tunnel: segment.tunnel as u8,
        }
    }
}

/// Connection slots per chunk of [`ConnTable::slots`].
pub(super) const SLOT_CHUNK: usize = 1024;

/// The live connections: a small hash index from key to a slot, and the connection state in a
/// slab. Index entries stay small (key and slot), so probing touches little memory and growing
/// the index moves little; a connection's state never moves once placed.
#[derive(Debug, Default)]
pub(super) struct ConnTable {
    pub(super) index: HashMap<Key, u32>,
    /// Connections by slot, in chunks of [`SLOT_CHUNK`] allocated once: the table grows
    /// without moving live connections (a growing `Vec` copied them and touched twice the
    /// memory; 30 % of `podwire standalone`'s page faults).
    pub(super) slots: Vec<Vec<Option<(Key, Conn)>>>,
    pub(super) free: Vec<u32>,
    /// The last key looked up and its slot: packets come in bursts per connection.
    pub(super) last: Option<(Key, u32)>,
}

impl ConnTable {
    pub(super) fn with_capacity(n: usize) -> Self {
        ConnTable {
            index: HashMap::with_capacity(n),
            slots: Vec::new(),
            free: Vec::new(),
            last: None,
        }
    }

    pub(super) fn len(&self) -> usize {
        self.index.len()
    }

    pub(super) fn slot(&mut self, key: &Key) -> Option<usize> {
        if let Some((k, i)) = self.last
            && k == *key
        {
            return Some(i as usize);
        }
        let i = *self.index.get(key)?;
        self.last = Some((*key, i));
        Some(i as usize)
    }

    pub(super) fn get_mut(&mut self, key: &Key) -> Option<&mut Conn> {
        let i = self.slot(key)?;
        self.entry_mut(i)?.as_mut().map(|(_, c)| c)
    }

    pub(super) fn contains_key(&self, key: &Key) -> bool {
        self.index.contains_key(key)
    }

    pub(super) fn remove(&mut self, key: &Key) -> Option<Conn> {
        self.last = None;
        let i = self.index.remove(key)?;
        self.free.push(i);
        self.entry_mut(i as usize)?.take().map(|(_, c)| c)
    }

    pub(super) fn at(&self, slot: u32) -> Option<&Conn> {
        let i = slot as usize;
        self.slots.get(i / SLOT_CHUNK)?.get(i % SLOT_CHUNK)?.as_ref().map(|(_, c)| c)
    }

    pub(super) fn at_mut(&mut self, slot: u32) -> Option<&mut Conn> {
        self.entry_mut(slot as usize)?.as_mut().map(|(_, c)| c)
    }

    pub(super) fn remove_at(&mut self, slot: u32) -> Option<Conn> {
        self.last = None;
        let (key, conn) = self.entry_mut(slot as usize)?.take()?;
        self.index.remove(&key);
        self.free.push(slot);
        Some(conn)
    }

    /// Inserts (replacing any connection on the same key) and returns the slot.
    pub(super) fn insert(&mut self, key: Key, conn: Conn) -> u32 {
        let _replaced = self.remove(&key);
        let i = match self.free.pop() {
            Some(i) => {
                if let Some(e) = self.entry_mut(i as usize) {
                    *e = Some((key, conn));
                }
                i
            }
            None => {
                if self.slots.last().is_none_or(|c| c.len() == SLOT_CHUNK) {
                    self.slots.push(Vec::with_capacity(SLOT_CHUNK));
                }
                let n = self.slots.len();
                let chunk = &mut self.slots[n - 1];
                chunk.push(Some((key, conn)));
                u32::try_from((n - 1) * SLOT_CHUNK + chunk.len() - 1).unwrap_or(u32::MAX)
            }
        };
        self.index.insert(key, i);
        i
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = (&Key, &Conn)> {
        self.slots.iter().flatten().filter_map(|s| s.as_ref().map(|(k, c)| (k, c)))
    }

    pub(super) fn entry_mut(&mut self, i: usize) -> Option<&mut Option<(Key, Conn)>> {
        self.slots.get_mut(i / SLOT_CHUNK)?.get_mut(i % SLOT_CHUNK)
    }
}
