//! Process metrics read from `/proc/self` at scrape time (Linux; elsewhere the
//! series are absent): resident memory, CPU seconds and open descriptors, under
//! the names every Prometheus client library uses (`process_*`).

use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

/// `/proc/[pid]/stat` counts CPU time in USER_HZ ticks, which the kernel fixes
/// at 100 for its user-space ABI (proc(5), "utime").
const TICKS_PER_SECOND: f64 = 100.0;

/// Resident set size in bytes, from `VmRSS` in `/proc/self/status`.
pub fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// User plus system CPU seconds, from `/proc/self/stat` fields 14 and 15.
pub fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) may hold spaces; fields after it are plain.
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime + stime) as f64 / TICKS_PER_SECOND)
}

/// Open file descriptors: the entries of `/proc/self/fd`.
pub fn open_fds() -> Option<u64> {
    Some(std::fs::read_dir("/proc/self/fd").ok()?.count() as u64)
}

pub(crate) fn encode(encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
    if let Some(bytes) = resident_bytes() {
        let g = ConstGauge::new(i64::try_from(bytes).unwrap_or(i64::MAX));
        g.encode(encoder.encode_descriptor(
            "process_resident_memory_bytes",
            "Resident memory size in bytes.",
            None,
            g.metric_type(),
        )?)?;
    }
    if let Some(seconds) = cpu_seconds() {
        let c = ConstCounter::new(seconds);
        c.encode(encoder.encode_descriptor(
            "process_cpu_seconds",
            "User and system CPU time spent, in seconds.",
            None,
            c.metric_type(),
        )?)?;
    }
    if let Some(fds) = open_fds() {
        let g = ConstGauge::new(i64::try_from(fds).unwrap_or(i64::MAX));
        g.encode(encoder.encode_descriptor(
            "process_open_fds",
            "Open file descriptors.",
            None,
            g.metric_type(),
        )?)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    #[cfg(target_os = "linux")]
    fn reads_this_process() {
        assert!(super::resident_bytes().unwrap() > 0);
        assert!(super::cpu_seconds().unwrap() >= 0.0);
        assert!(super::open_fds().unwrap() >= 3);
    }
}
