//! System calls the capture loop needs that aya does not wrap: clocks, waiting for running
//! programs (an RCU grace period), and polling the ring buffer's descriptor.
use std::time::Duration;

/// A clock's reading in ns (0 if it cannot be read, which Linux does not do for these clocks).
#[allow(unsafe_code)]
pub(super) fn clock_ns(clock: libc::clockid_t) -> i64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec; clock_gettime writes only into it.
    let rc = unsafe { libc::clock_gettime(clock, &mut ts) };
    if rc == 0 { ts.tv_sec * 1_000_000_000 + ts.tv_nsec } else { 0 }
}

pub(super) fn monotonic_ns() -> i64 {
    clock_ns(libc::CLOCK_MONOTONIC)
}

/// CLOCK_REALTIME − CLOCK_MONOTONIC: adds to `bpf_ktime_get_ns()` to give wall time.
pub(super) fn mono_offset_ns() -> i64 {
    let mono = monotonic_ns();
    clock_ns(libc::CLOCK_REALTIME) - mono
}

/// Waits until every eBPF program that was running has returned: an RCU grace period
/// (`membarrier(MEMBARRIER_CMD_GLOBAL)`; TC programs run inside RCU read sections). False where
/// the kernel refuses it (CPUs in `nohz_full` mode, a seccomp profile without `membarrier`).
#[allow(unsafe_code)]
pub(super) fn wait_for_running_programs() -> bool {
    const MEMBARRIER_CMD_GLOBAL: libc::c_long = 1;
    // SAFETY: membarrier takes no pointers; flags and cpu_id are 0.
    unsafe { libc::syscall(libc::SYS_membarrier, MEMBARRIER_CMD_GLOBAL, 0, 0) == 0 }
}

/// Waits until `fd` is readable or `timeout` passes.
#[allow(unsafe_code)]
pub(super) fn wait_readable(fd: i32, timeout: Duration) {
    let mut pfd = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
    let ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
    // SAFETY: one valid pollfd, count 1; poll only writes `revents`.
    let _ = unsafe { libc::poll(&mut pfd, 1, ms) };
}
#[cfg(test)]
mod tests {
    use super::*;

    /// The wait `advance_interval` relies on works on this kernel (it needs no privileges).
    #[test]
    fn the_kernel_waits_for_running_programs() {
        let t = std::time::Instant::now();
        assert!(
            wait_for_running_programs(),
            "membarrier(MEMBARRIER_CMD_GLOBAL): {} (a kernel with nohz_full CPUs, or a seccomp \
             profile that blocks membarrier, refuses it)",
            std::io::Error::last_os_error()
        );
        eprintln!("one RCU grace period: {:?}", t.elapsed());
    }
}
