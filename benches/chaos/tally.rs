//! What happened, shared between the load, the readers and the report.

use super::*;

pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 120_000_000, 3).unwrap()
}

/// One sink's side of the soak.
pub struct Tally {
    pub name: &'static str,
    pub acked: Mutex<Vec<String>>,
    /// Acked, and sent where no queue is bound: due in a dead-letter file.
    pub unroutable: Mutex<Vec<String>>,
    /// Which replica (port) acked each id, and when (ms since the start):
    /// printed for missing ids.
    pub acked_by: Mutex<HashMap<String, (u16, u64)>>,
    pub sent: AtomicU64,
    /// Non-ack replies by HTTP status.
    pub refused: Mutex<BTreeMap<u16, u64>>,
    /// Requests that got no reply (connection refused or reset, timeout).
    pub transport_errors: AtomicU64,
    pub latency: Mutex<Histogram<u64>>,
    /// Milliseconds since the start when the last ack arrived.
    pub last_ack_ms: AtomicU64,
    /// Longest time without any ack (ms), and when it ended (s).
    pub longest_stall: Mutex<(u64, f64)>,
    /// How often the reader saw each id.
    pub seen: Mutex<HashMap<String, u32>>,
}

impl Tally {
    pub fn new(name: &'static str) -> Self {
        Self {
            name,
            acked: Mutex::default(),
            unroutable: Mutex::default(),
            acked_by: Mutex::default(),
            sent: AtomicU64::default(),
            refused: Mutex::default(),
            transport_errors: AtomicU64::default(),
            latency: Mutex::new(new_histogram()),
            last_ack_ms: AtomicU64::default(),
            longest_stall: Mutex::default(),
            seen: Mutex::default(),
        }
    }

    pub fn saw(&self, id: &str) {
        *self.seen.lock().unwrap().entry(id.to_owned()).or_default() += 1;
    }

    pub fn missing(&self) -> Vec<String> {
        let seen = self.seen.lock().unwrap();
        let acked = self.acked.lock().unwrap();
        acked
            .iter()
            .filter(|id| !seen.contains_key(*id))
            .cloned()
            .collect()
    }
}

#[derive(Deserialize)]
pub struct Data<'a> {
    pub event_id: &'a str,
}

pub fn event_id(payload: &[u8]) -> Option<String> {
    serde_json::from_slice::<Data>(payload)
        .ok()
        .map(|data| data.event_id.to_owned())
}
