//! What a server process costs, from /proc (and `perf stat`, if installed):
//! memory, CPU time, thread wake-ups and system calls.

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};

/// Peak RSS (VmHWM) and current RSS of `pid`, in MiB.
pub fn memory_mib(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|line| line.starts_with(name))
            .and_then(|line| line.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

/// User + system CPU seconds of `pid` so far.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are 14 and 15.
    let rest = stat.rsplit(')').next().unwrap_or_default();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // Linux reports these in clock ticks of 1/100 s (USER_HZ).
    (ticks(11) + ticks(12)) / 100.0
}

/// Context switches of each thread of a process, summed by thread name.
/// A voluntary switch is a thread blocking (to be woken later): counted
/// over a phase, they are the hand-offs between threads.
#[derive(Default, Clone)]
pub struct Switches {
    /// Thread name -> (voluntary, involuntary).
    pub by_thread: BTreeMap<String, (u64, u64)>,
}

impl Switches {
    /// The counts of `pid`'s live threads now.
    pub fn read(pid: u32) -> Self {
        let mut by_thread = BTreeMap::new();
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            return Self::default();
        };
        for task in tasks.flatten() {
            let path = task.path();
            let name = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
            let status = std::fs::read_to_string(path.join("status")).unwrap_or_default();
            let field = |key: &str| {
                status
                    .lines()
                    .find_map(|line| line.strip_prefix(key))
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .unwrap_or(0)
            };
            let entry: &mut (u64, u64) = by_thread.entry(name.trim().to_owned()).or_default();
            entry.0 += field("voluntary_ctxt_switches:");
            entry.1 += field("nonvoluntary_ctxt_switches:");
        }
        Self { by_thread }
    }

    /// What happened between `before` and `self` (threads that ended in
    /// between are not counted).
    pub fn since(&self, before: &Self) -> Self {
        let by_thread = self
            .by_thread
            .iter()
            .map(|(name, (v, n))| {
                let (bv, bn) = before.by_thread.get(name).copied().unwrap_or_default();
                (name.clone(), (v.saturating_sub(bv), n.saturating_sub(bn)))
            })
            .collect();
        Self { by_thread }
    }

    /// Voluntary switches in all threads.
    pub fn voluntary(&self) -> u64 {
        self.by_thread.values().map(|(v, _)| v).sum()
    }
}

/// System calls of a process over a phase, counted by `perf stat` on the
/// `raw_syscalls:sys_enter` tracepoint (absent when perf is not installed
/// or not permitted).
pub struct SyscallCount(Option<Child>);

impl SyscallCount {
    /// Starts counting the system calls of `pid`.
    pub fn start(pid: u32) -> Self {
        let child = Command::new("perf")
            .args(["stat", "-x", ",", "-e", "raw_syscalls:sys_enter", "-p"])
            .arg(pid.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .ok();
        // perf needs a moment to attach.
        std::thread::sleep(std::time::Duration::from_millis(200));
        Self(child)
    }

    /// Stops counting; the number of system calls, if perf counted them.
    pub fn stop(self) -> Option<u64> {
        let child = self.0?;
        let _ = Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status();
        let output = child.wait_with_output().ok()?;
        String::from_utf8_lossy(&output.stderr)
            .lines()
            .find(|line| line.contains("raw_syscalls:sys_enter"))
            .and_then(|line| line.split(',').next())
            .and_then(|count| count.trim().parse().ok())
    }
}
