//! The `process_*` metrics every Prometheus client library exports (CPU seconds, resident and
//! virtual memory, open and maximum file descriptors, threads, start time), read from `/proc`
//! on each scrape. prometheus-client has no process collector of its own; on a system without
//! `/proc` the family is simply absent.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric as _};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::{Registry, Unit};

/// Registers the process collector in `registry` (unprefixed: the names are a convention).
pub fn register(registry: &mut Registry) {
    registry.register_collector(Box::new(ProcessCollector));
}

/// Reads `/proc/self` when scraped; holds nothing.
#[derive(Debug)]
struct ProcessCollector;

/// What one scrape read about the process; a value that could not be read is None.
#[derive(Debug, Default, PartialEq)]
struct ProcessStats {
    cpu_seconds: Option<f64>,
    resident_bytes: Option<i64>,
    virtual_bytes: Option<i64>,
    threads: Option<i64>,
    start_time_seconds: Option<f64>,
    open_fds: Option<i64>,
    max_fds: Option<i64>,
}

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let stats = read_stats();
        if let Some(seconds) = stats.cpu_seconds {
            let metric = ConstCounter::new(seconds);
            metric.encode(encoder.encode_descriptor(
                "process_cpu_seconds",
                "Total user and system CPU time spent in seconds",
                None,
                metric.metric_type(),
            )?)?;
        }
        let gauges_i64 = [
            (
                "process_resident_memory_bytes",
                "Resident memory size in bytes",
                stats.resident_bytes,
            ),
            (
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes",
                stats.virtual_bytes,
            ),
            (
                "process_open_fds",
                "Number of open file descriptors",
                stats.open_fds,
            ),
            (
                "process_max_fds",
                "Maximum number of open file descriptors",
                stats.max_fds,
            ),
            ("process_threads", "Number of OS threads", stats.threads),
        ];
        for (name, help, value) in gauges_i64 {
            if let Some(value) = value {
                let metric = ConstGauge::new(value);
                metric.encode(encoder.encode_descriptor(
                    name,
                    help,
                    None,
                    metric.metric_type(),
                )?)?;
            }
        }
        if let Some(start) = stats.start_time_seconds {
            let metric = ConstGauge::new(start);
            metric.encode(encoder.encode_descriptor(
                "process_start_time",
                "Start time of the process since unix epoch in seconds",
                Some(&Unit::Seconds),
                metric.metric_type(),
            )?)?;
        }
        Ok(())
    }
}

#[cfg(target_os = "linux")]
fn read_stats() -> ProcessStats {
    let read = |path: &str| std::fs::read_to_string(path).ok();
    let ticks = rustix::param::clock_ticks_per_second() as f64;
    let page = rustix::param::page_size() as i64;
    let mut stats = read("/proc/self/stat")
        .and_then(|stat| {
            let boot = read("/proc/stat").and_then(|s| boot_time(&s));
            parse_stat(&stat, ticks, page, boot)
        })
        .unwrap_or_default();
    stats.open_fds = std::fs::read_dir("/proc/self/fd")
        .ok()
        .map(|dir| i64::try_from(dir.count()).unwrap_or(i64::MAX));
    stats.max_fds = read("/proc/self/limits").and_then(|l| max_open_files(&l));
    stats
}

#[cfg(not(target_os = "linux"))]
fn read_stats() -> ProcessStats {
    ProcessStats::default()
}

/// The fields of `/proc/self/stat` (proc(5)) the metrics need. The second field, the command
/// name in parentheses, may itself hold spaces and parentheses, so fields are counted from the
/// last `)`.
fn parse_stat(
    stat: &str,
    ticks_per_second: f64,
    page_size: i64,
    boot_time: Option<f64>,
) -> Option<ProcessStats> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    // after_name starts at field 3 (state): field N is at index N - 3.
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<u64>().ok());
    let utime = field(14)?;
    let stime = field(15)?;
    let threads = field(20)?;
    let start_ticks = field(22)?;
    let vsize = field(23)?;
    let rss_pages = field(24)?;
    Some(ProcessStats {
        cpu_seconds: Some((utime + stime) as f64 / ticks_per_second),
        resident_bytes: Some(
            i64::try_from(rss_pages)
                .unwrap_or(i64::MAX)
                .saturating_mul(page_size),
        ),
        virtual_bytes: Some(i64::try_from(vsize).unwrap_or(i64::MAX)),
        threads: Some(i64::try_from(threads).unwrap_or(i64::MAX)),
        start_time_seconds: boot_time.map(|boot| boot + start_ticks as f64 / ticks_per_second),
        ..ProcessStats::default()
    })
}

/// The `btime` line of `/proc/stat`: when the system booted, in seconds since the epoch.
fn boot_time(proc_stat: &str) -> Option<f64> {
    proc_stat
        .lines()
        .find_map(|line| line.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

/// The soft limit of the `Max open files` line of `/proc/self/limits`.
fn max_open_files(limits: &str) -> Option<i64> {
    limits
        .lines()
        .find_map(|line| line.strip_prefix("Max open files"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|soft| soft.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_a_command_name_with_spaces_and_parentheses() {
        // proc(5) fields 1..24 of a process named "to ken) d".
        let stat = "42 (to ken) d) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 7 0 1000 \
                    123456789 300 18446744073709551615";
        let stats = parse_stat(stat, 100.0, 4096, Some(1_700_000_000.0)).expect("parses");
        assert_eq!(stats.cpu_seconds, Some(3.0));
        assert_eq!(stats.threads, Some(7));
        assert_eq!(stats.virtual_bytes, Some(123_456_789));
        assert_eq!(stats.resident_bytes, Some(300 * 4096));
        assert_eq!(stats.start_time_seconds, Some(1_700_000_010.0));
        assert_eq!(parse_stat("garbage", 100.0, 4096, None), None);
    }

    #[test]
    fn limits_and_boot_time_are_read_from_their_lines() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
                      Max cpu time              unlimited            unlimited            seconds\n\
                      Max open files            1024                 524288               files\n";
        assert_eq!(max_open_files(limits), Some(1024));
        assert_eq!(
            boot_time("cpu  1 2 3\nbtime 1700000000\nprocesses 5\n"),
            Some(1.7e9)
        );
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn this_process_is_read() {
        let stats = read_stats();
        assert!(stats.resident_bytes.is_some_and(|b| b > 0), "{stats:?}");
        assert!(stats.open_fds.is_some_and(|n| n > 0), "{stats:?}");
        assert!(stats.threads.is_some_and(|n| n >= 1), "{stats:?}");
        assert!(
            stats.start_time_seconds.is_some_and(|t| t > 1.0e9),
            "{stats:?}"
        );
    }
}
