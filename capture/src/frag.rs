//! IP fragment reassembly, bounded. Each datagram's fragments are collected (etherparse's
//! `IpDefragBuf` does the range bookkeeping) until it is complete; the completed datagram is
//! decoded once and counts as all of its fragments (packets and IP bytes). Memory is bounded by
//! [`MAX_PENDING`] datagrams and the reassembly timeout.
use crate::packet::{Segment, Skip};
use etherparse::IpFragOffset;
use etherparse::defrag::IpDefragBuf;
use hashbrown::HashMap;
use std::net::IpAddr;

/// Most datagrams held at once; beyond it the oldest is dropped (and counted).
pub const MAX_PENDING: usize = 4096;

/// Identifies the fragments of one datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FragKey {
    src: IpAddr,
    dst: IpAddr,
    id: u32,
    proto: u8,
    segment: Segment,
}

impl FragKey {
    /// The key of a datagram.
    pub fn new(src: IpAddr, dst: IpAddr, id: u32, proto: u8, segment: Segment) -> Self {
        FragKey { src, dst, id, proto, segment }
    }
}

#[derive(Debug)]
struct Pending {
    buf: IpDefragBuf,
    first_ns: i64,
    packets: u32,
    ip_bytes: u64,
}

/// A datagram whose last fragment just arrived; its bytes are in [`Reassembler::last_datagram`].
#[derive(Debug, Clone, Copy)]
pub struct Done {
    /// Fragments it was made of.
    pub packets: u32,
    /// Sum of the fragments' IP lengths.
    pub ip_bytes: u64,
}

/// The fragment table.
#[derive(Debug, Default)]
pub struct Reassembler {
    pending: HashMap<FragKey, Pending>,
    /// The transport bytes of the datagram completed last.
    pub last_datagram: Vec<u8>,
    spare: Vec<Vec<u8>>,
    /// Fragments dropped without being reassembled since the last [`Self::take_dropped`].
    dropped: u64,
}

impl Reassembler {
    /// Datagrams awaiting fragments.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Adds a fragment; returns the datagram when it is complete.
    ///
    /// # Errors
    /// [`Skip::BadFragment`] for a fragment that contradicts the ones before it (the whole
    /// datagram is dropped and its fragments are counted as bad).
    pub fn add(
        &mut self,
        key: FragKey,
        offset: IpFragOffset,
        more: bool,
        payload: &[u8],
        ip_bytes: u64,
        ts_ns: i64,
    ) -> Result<Option<Done>, Skip> {
        if !self.pending.contains_key(&key) && self.pending.len() >= MAX_PENDING {
            self.drop_oldest();
        }
        let spare = self.spare.pop().unwrap_or_default();
        let entry = self.pending.entry(key).or_insert_with(|| Pending {
            buf: IpDefragBuf::new(etherparse::IpNumber(key.proto), spare, Vec::new()),
            first_ns: ts_ns,
            packets: 0,
            ip_bytes: 0,
        });
        entry.packets += 1;
        entry.ip_bytes += ip_bytes;
        if entry.buf.add(offset, more, payload).is_err() {
            // This fragment is reported by the caller; the ones held before it are dropped here.
            self.dropped += u64::from(entry.packets - 1);
            self.pending.remove(&key);
            return Err(Skip::BadFragment);
        }
        if !entry.buf.is_complete() {
            return Ok(None);
        }
        let Some(done) = self.pending.remove(&key) else { return Ok(None) };
        let (data, _) = done.buf.take_bufs();
        let old = std::mem::replace(&mut self.last_datagram, data);
        if self.spare.len() < 16 {
            let mut old = old;
            old.clear();
            self.spare.push(old);
        }
        Ok(Some(Done { packets: done.packets, ip_bytes: done.ip_bytes }))
    }

    /// Drops datagrams whose first fragment is older than `max_age_ns`.
    pub fn expire(&mut self, now_ns: i64, max_age_ns: i64) {
        let mut dropped = 0u64;
        self.pending.retain(|_, p| {
            let keep = now_ns - p.first_ns <= max_age_ns;
            if !keep {
                dropped += u64::from(p.packets);
            }
            keep
        });
        self.dropped += dropped;
    }

    /// Drops everything still pending (end of input).
    pub fn drain(&mut self) {
        self.dropped += self.pending.values().map(|p| u64::from(p.packets)).sum::<u64>();
        self.pending.clear();
    }

    /// Fragments dropped unassembled since the last call.
    pub fn take_dropped(&mut self) -> u64 {
        std::mem::take(&mut self.dropped)
    }

    fn drop_oldest(&mut self) {
        if let Some(k) = self.pending.iter().min_by_key(|(_, p)| p.first_ns).map(|(k, _)| *k)
            && let Some(p) = self.pending.remove(&k)
        {
            self.dropped += u64::from(p.packets);
        }
    }
}
