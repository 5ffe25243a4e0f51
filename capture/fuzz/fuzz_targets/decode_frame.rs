//! Any bytes, any link type, through the decoder and the tracker: no panic, no hang.
#![no_main]
use libfuzzer_sys::fuzz_target;
use podwire_capture::decode::{Decoder, LinkType};
use podwire_capture::tracker::{Tracker, TrackerConfig};

fuzz_target!(|data: &[u8]| {
    let Some((&sel, frame)) = data.split_first() else { return };
    let link = [
        LinkType::Ethernet,
        LinkType::LinuxSll,
        LinkType::LinuxSll2,
        LinkType::RawIp,
        LinkType::Null,
    ][usize::from(sel) % 5];
    let mut d = Decoder::new();
    let mut t = Tracker::new(TrackerConfig::default());
    // Feed the frame twice so the second sees a live connection (and DNS state).
    for ts in [1_000, 2_000] {
        if let Ok(p) = d.decode(link, frame, ts) {
            t.on_packet(ts, &p);
        }
    }
    t.sweep(true);
});
