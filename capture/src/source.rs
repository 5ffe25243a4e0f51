//! Packet sources. [`PcapFile`] reads pcap (microsecond and nanosecond) and pcapng files with
//! `pcap-parser`, streaming through a fixed buffer: memory does not grow with the file.
use crate::decode::LinkType;
use crate::error::{Error, Result};
use pcap_parser::pcapng::Block;
use pcap_parser::{PcapBlockOwned, PcapError};
use std::fs::File;
use std::path::{Path, PathBuf};

/// One captured frame.
#[derive(Debug, Clone, Copy)]
pub struct Frame<'a> {
    /// Capture time, ns since the epoch.
    pub ts_ns: i64,
    /// The frame's link type.
    pub link: LinkType,
    /// Captured bytes (may be fewer than the wire length).
    pub data: &'a [u8],
    /// Byte offset of the record in the file.
    pub offset: u64,
}

/// Read buffer size: large enough for any block podwire accepts, and few read calls.
const BUFFER: usize = 1 << 20;

/// A pcap or pcapng file.
#[derive(Debug)]
pub struct PcapFile {
    path: PathBuf,
    /// File size in bytes, for progress.
    pub len: u64,
}

#[derive(Debug, Clone, Copy)]
struct Interface {
    link: Option<LinkType>,
    linktype: i32,
    offset: u64,
    resolution: u64,
    ts_offset: i64,
}

impl PcapFile {
    /// A capture read from memory or a stream; `name` stands for the path in errors.
    pub fn named(name: &Path, len: u64) -> Self {
        PcapFile { path: name.into(), len }
    }

    /// Opens nothing yet; checks that the file exists.
    ///
    /// # Errors
    /// [`Error::Io`] when the file cannot be read.
    pub fn new(path: &Path) -> Result<Self> {
        let meta =
            std::fs::metadata(path).map_err(|source| Error::Io { path: path.into(), source })?;
        Ok(PcapFile { path: path.into(), len: meta.len() })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Calls `on_frame` for every packet, in file order.
    ///
    /// # Errors
    /// [`Error::BadCapture`] for an empty, unrecognised or truncated file and
    /// [`Error::UnknownLinkType`]; frames before the error have been delivered.
    pub fn for_each(&self, on_frame: impl FnMut(Frame<'_>)) -> Result<()> {
        let file = File::open(&self.path)
            .map_err(|source| Error::Io { path: self.path.clone(), source })?;
        self.read_from(file, on_frame)
    }

    /// Like [`Self::for_each`], reading the capture from `input` (errors name this file's path).
    ///
    /// # Errors
    /// As [`Self::for_each`].
    pub fn read_from(
        &self,
        input: impl std::io::Read + Send,
        mut on_frame: impl FnMut(Frame<'_>),
    ) -> Result<()> {
        let file = input;
        let bad =
            |offset: u64, what: String| Error::BadCapture { path: self.path.clone(), offset, what };
        let mut reader = match pcap_parser::create_reader(BUFFER, file) {
            Ok(r) => r,
            Err(PcapError::Eof) => return Err(bad(0, "the file is empty".into())),
            Err(PcapError::Incomplete(_)) => {
                return Err(bad(0, "the file ends inside the capture file header".into()));
            }
            Err(_) => {
                let mut head = [0u8; 4];
                let n = std::fs::File::open(&self.path)
                    .and_then(|mut f| std::io::Read::read(&mut f, &mut head))
                    .unwrap_or(0);
                let head =
                    head[..n].iter().map(|x| format!("{x:02x}")).collect::<Vec<_>>().join(" ");
                return Err(bad(
                    0,
                    format!(
                        "not a pcap or pcapng file (starts with {head}); podwire reads what \
                         tcpdump -w, tshark -w or dumpcap write"
                    ),
                ));
            }
        };
        let mut pos: u64 = 0;
        let mut last_ts: i64 = 0;
        let mut legacy: Option<(Option<LinkType>, i32, bool)> = None;
        let mut interfaces: Vec<Interface> = Vec::new();
        loop {
            match reader.next() {
                Ok((len, block)) => {
                    match block {
                        PcapBlockOwned::LegacyHeader(h) => {
                            let lt = h.network.0;
                            let link = LinkType::from_pcap(lt);
                            if link.is_none() {
                                return Err(Error::UnknownLinkType {
                                    path: self.path.clone(),
                                    offset: pos,
                                    linktype: lt,
                                });
                            }
                            legacy = Some((link, lt, h.is_nanosecond_precision()));
                        }
                        PcapBlockOwned::Legacy(b) => {
                            if let Some((Some(link), _, nanos)) = legacy {
                                let frac = i64::from(b.ts_usec);
                                let ts_ns = i64::from(b.ts_sec) * 1_000_000_000
                                    + if nanos { frac } else { frac * 1_000 };
                                let n = (b.caplen as usize).min(b.data.len());
                                last_ts = ts_ns;
                                on_frame(Frame { ts_ns, link, data: &b.data[..n], offset: pos });
                            }
                        }
                        PcapBlockOwned::NG(Block::SectionHeader(_)) => interfaces.clear(),
                        PcapBlockOwned::NG(Block::InterfaceDescription(idb)) => {
                            let lt = idb.linktype.0;
                            let link = LinkType::from_pcap(lt);
                            interfaces.push(Interface {
                                link,
                                linktype: lt,
                                offset: pos,
                                resolution: idb.ts_resolution().unwrap_or(1_000_000),
                                ts_offset: idb.ts_offset(),
                            });
                        }
                        PcapBlockOwned::NG(Block::EnhancedPacket(epb)) => {
                            let Some(ifc) = interfaces.get(epb.if_id as usize).copied() else {
                                return Err(bad(
                                    pos,
                                    format!(
                                        "packet block names interface {} but the file describes \
                                         only {}",
                                        epb.if_id,
                                        interfaces.len()
                                    ),
                                ));
                            };
                            let Some(link) = ifc.link else {
                                return Err(Error::UnknownLinkType {
                                    path: self.path.clone(),
                                    offset: ifc.offset,
                                    linktype: ifc.linktype,
                                });
                            };
                            let raw = (u64::from(epb.ts_high) << 32) | u64::from(epb.ts_low);
                            let ts_ns =
                                ts_to_ns(raw, ifc.resolution) + ifc.ts_offset * 1_000_000_000;
                            let n = (epb.caplen as usize).min(epb.data.len());
                            last_ts = ts_ns;
                            on_frame(Frame { ts_ns, link, data: &epb.data[..n], offset: pos });
                        }
                        PcapBlockOwned::NG(Block::SimplePacket(spb)) => {
                            // No timestamp: the previous packet's time stands in.
                            if let Some(Interface { link: Some(link), .. }) = interfaces.first() {
                                let (link, data) = (*link, spb.data);
                                on_frame(Frame { ts_ns: last_ts, link, data, offset: pos });
                            }
                        }
                        PcapBlockOwned::NG(_) => {}
                    }
                    pos += len as u64;
                    // No shift per record: `refill` moves only the unread tail.
                    reader.consume_noshift(len);
                }
                Err(PcapError::Eof) => return Ok(()),
                Err(PcapError::Incomplete(_)) => {
                    if reader.refill().is_err() {
                        return Err(bad(pos, "read error while refilling".into()));
                    }
                }
                Err(PcapError::UnexpectedEof) => {
                    return Err(bad(
                        pos,
                        format!(
                            "the file ends in the middle of a record ({} bytes left over): it was \
                             truncated, perhaps copied while the capture was still running; the \
                             packets before this point were processed",
                            self.len.saturating_sub(pos)
                        ),
                    ));
                }
                Err(PcapError::BufferTooSmall) => {
                    return Err(bad(pos, format!("a record larger than {BUFFER} bytes")));
                }
                Err(e) => {
                    return Err(bad(pos, format!("unreadable record: {}", short_error(&e))));
                }
            }
        }
    }
}

fn short_error(e: &PcapError<&[u8]>) -> String {
    match e {
        PcapError::NomError(_, kind) | PcapError::OwnedNomError(_, kind) => {
            format!("invalid record header ({kind:?})")
        }
        PcapError::ReadError => "read error".into(),
        PcapError::HeaderNotRecognized => "header not recognized".into(),
        other => format!("{other:?}"),
    }
}

fn ts_to_ns(raw: u64, resolution: u64) -> i64 {
    if resolution == 0 {
        return 0;
    }
    let secs = raw / resolution;
    let frac = raw % resolution;
    let ns = (u128::from(frac) * 1_000_000_000 / u128::from(resolution)) as u64;
    i64::try_from(secs).unwrap_or(i64::MAX / 2 / 1_000_000_000) * 1_000_000_000 + ns as i64
}
