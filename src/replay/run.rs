//! The replay loop: read, filter, send in batches, record in the ledger.

use std::future::Future;
use std::io::BufRead;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use time::OffsetDateTime;
use tracing::{info, warn};

use super::input;
use super::ledger::{self, Ledger, LineId};
use super::outputs::Outputs;
use super::pacer::Pacer;
use super::select::{Selector, Work};
use super::{Options, ReplayError, Summary};
use crate::broker::{self, AnySink};
use crate::normalize::Event;
use crate::settings::Validated;
use crate::sink::dead_letter::{self, line};
use crate::sink::{Sink, SinkError};
use crate::stats::Stats;
use crate::traces;

/// Lines sent (and recorded in the ledger) together.
const BATCH: usize = 128;

/// How long a stop signal lets the batch under way finish.
const FINISH_ON_STOP: Duration = Duration::from_secs(5);

/// Replays `options.inputs` through the configured sink until done or
/// `stop` resolves (then the batch under way is finished first).
pub async fn run(
    settings: &Validated,
    options: &Options,
    stop: impl Future<Output = ()>,
) -> Result<Summary, ReplayError> {
    // Polled once now, so its signal handlers are in place before the
    // first batch (an early Ctrl-C then stops at a batch's end).
    let mut stop = std::pin::pin!(stop);
    let stopped_early = stop.as_mut().now_or_never().is_some();
    let files = input::expand(&options.inputs).map_err(|cause| ReplayError::File {
        path: options.inputs.first().cloned().unwrap_or_default(),
        cause,
    })?;
    let mut replay = Replay {
        settings,
        options,
        sink: None,
        summary: Summary::default(),
        outputs: Outputs::new(),
        pacer: Pacer::new(options.rate),
        progress: None,
    };
    if !options.dry_run && !stopped_early {
        // The broker is waited for (it may be down): a stop ends the wait.
        let stats = Arc::new(Stats::default());
        tokio::select! {
            sink = broker::start(settings, stats) => replay.sink = Some(sink?),
            () = stop.as_mut() => {
                replay.summary.interrupted = true;
                return Ok(replay.summary);
            }
        }
    }
    // Read line by line; the total (for the progress bar) only on a
    // terminal.
    let total: u64 = if options.progress {
        files
            .iter()
            .map(|file| dead_letter::count_newlines(file).unwrap_or(0))
            .sum()
    } else {
        0
    };
    replay.progress = options.progress.then(|| indicatif::ProgressBar::new(total));
    replay.summary.interrupted = stopped_early;
    replay.summary.dry_run = options.dry_run;
    for file in &files {
        if replay.summary.interrupted {
            break;
        }
        replay.file(file, &mut stop).await?;
    }
    if let Some(bar) = &replay.progress {
        bar.finish_and_clear();
    }
    if let Some(sink) = replay.sink.take() {
        sink.close().await;
    }
    replay.summary.written_out = replay.outputs.paths();
    Ok(replay.summary)
}

struct Replay<'a> {
    settings: &'a Validated,
    options: &'a Options,
    sink: Option<AnySink>,
    summary: Summary,
    outputs: Outputs,
    pacer: Pacer,
    progress: Option<indicatif::ProgressBar>,
}

impl Replay<'_> {
    /// Replays the whole lines of one file (a line still being written,
    /// without its newline, is left for the next replay), reading one line
    /// at a time.
    async fn file(
        &mut self,
        file: &Path,
        stop: &mut std::pin::Pin<&mut impl Future<Output = ()>>,
    ) -> Result<(), ReplayError> {
        let file_error = |cause| ReplayError::File {
            path: file.to_owned(),
            cause,
        };
        let mut ledger = Ledger::open(file).map_err(file_error)?;
        let mut lines = std::io::BufReader::new(std::fs::File::open(file).map_err(file_error)?);
        let mut batch: Vec<(LineId, Work)> = Vec::new();
        let mut raw = Vec::new();
        let mut number = 0;
        loop {
            raw.clear();
            let read = lines.read_until(b'\n', &mut raw).map_err(file_error)?;
            if read == 0 || raw.pop() != Some(b'\n') {
                break;
            }
            number += 1;
            if raw.is_empty() {
                continue;
            }
            self.tick(number, file);
            let id = ledger::id(&raw);
            let mut selector = Selector {
                settings: self.settings,
                options: self.options,
                summary: &mut self.summary,
            };
            let Some(work) = selector.select(&raw, id, &ledger) else {
                continue;
            };
            batch.push((id, work));
            if batch.len() == BATCH {
                self.batch(file, &mut ledger, std::mem::take(&mut batch), stop)
                    .await
                    .map_err(file_error)?;
                if self.summary.interrupted {
                    return Ok(());
                }
            }
        }
        self.batch(file, &mut ledger, batch, stop)
            .await
            .map_err(file_error)
    }

    /// Sends one batch and waits for every confirmation; records it in the
    /// ledger before and after. Refused events and unparsed lines are
    /// written out (and synced) before the batch counts as done.
    async fn batch(
        &mut self,
        file: &Path,
        ledger: &mut Ledger,
        batch: Vec<(LineId, Work)>,
        stop: &mut std::pin::Pin<&mut impl Future<Output = ()>>,
    ) -> std::io::Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let ids: Vec<LineId> = batch.iter().map(|(id, _)| *id).collect();
        ledger.sending(&ids)?;
        let mut to_send = Vec::new();
        for (_, work) in batch {
            match work {
                Work::Publish { event, again } => to_send.push((event, again, 0u32)),
                Work::Skip => self.summary.skipped += 1,
                Work::Unparsed { line, dead_letter } => {
                    self.outputs.write(
                        &input::failed_path(file, dead_letter, self.outputs.stamp()),
                        &line,
                    )?;
                    self.summary.unparsed += 1;
                }
            }
        }
        let mut backoff = Duration::from_millis(self.settings.sink.retry_initial_ms);
        let mut last_cause = String::new();
        while !to_send.is_empty() {
            let Some(sink) = self.sink.as_mut() else {
                break;
            };
            let sink_name = sink.name();
            // Ctrl-C lets the batch under way finish for a moment; a broker
            // that never answers (Kafka waits for good by default) must not
            // make it wait longer: the batch then stays in flight in the
            // ledger and is sent again by the next run.
            let results = {
                let mut round = std::pin::pin!(send_round(sink, &mut self.pacer, to_send));
                tokio::select! {
                    results = &mut round => Some(results),
                    () = stop.as_mut() => {
                        self.summary.interrupted = true;
                        tokio::time::timeout(FINISH_ON_STOP, &mut round).await.ok()
                    }
                }
            };
            let Some(results) = results else {
                return Ok(());
            };
            let mut retry = Vec::new();
            for (event, again, attempts, result) in results {
                match result {
                    Ok(()) => {
                        self.summary.published += 1;
                        self.summary.maybe_twice += u64::from(again);
                    }
                    Err(SinkError::Rejected(rejection)) => {
                        let now = OffsetDateTime::now_utc();
                        let context = rejection.dead_letter_context(sink_name, attempts, now, now);
                        let bytes = line::encode(&event, &context)?;
                        self.outputs.write(
                            &input::failed_path(file, true, self.outputs.stamp()),
                            &bytes,
                        )?;
                        self.summary.refused += 1;
                    }
                    Err(SinkError::Retryable(cause)) => {
                        if cause.to_string() != last_cause {
                            warn!(%cause, "the broker did not take a replayed event; retrying");
                            last_cause = cause.to_string();
                        }
                        retry.push((event, again, attempts));
                    }
                }
            }
            to_send = retry;
            if !to_send.is_empty() && self.summary.interrupted {
                return Ok(());
            }
            if !to_send.is_empty() {
                // Interrupted while the broker is away: the batch stays in
                // flight in the ledger and is sent again by the next run.
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    () = stop.as_mut() => {
                        self.summary.interrupted = true;
                        return Ok(());
                    }
                }
                backoff = (backoff * 2).min(Duration::from_millis(self.settings.sink.retry_max_ms));
                if let Some(sink) = self.sink.as_mut() {
                    if let Err(err) = sink.recover().await {
                        warn!(cause = %err, "the broker is still unavailable");
                    }
                }
            }
        }
        self.outputs.sync()?;
        ledger.done(&ids)?;
        if !self.summary.interrupted && stop.as_mut().now_or_never().is_some() {
            self.summary.interrupted = true;
        }
        Ok(())
    }

    /// Advances the progress bar, or logs now and then.
    fn tick(&self, number: usize, file: &Path) {
        match &self.progress {
            Some(bar) => bar.inc(1),
            None if number.is_multiple_of(10_000) && number > 0 => {
                info!(file = %file.display(), line = number, published = self.summary.published, "replaying");
            }
            None => {}
        }
    }
}

/// An event to send, whether an interrupted replay had it in flight, and
/// how often it was sent.
type Pending = (Event, bool, u32);

/// Sends `to_send` (paced) and waits for every confirmation.
async fn send_round(
    sink: &mut AnySink,
    pacer: &mut Pacer,
    to_send: Vec<Pending>,
) -> Vec<(Event, bool, u32, Result<(), SinkError>)> {
    let mut deliveries = Vec::with_capacity(to_send.len());
    for (mut event, again, attempts) in to_send {
        pacer.wait().await;
        // A refused callback replayed starts its trace here; a dead letter
        // keeps the one it was acked in.
        if event.traceparent.is_empty() {
            event.traceparent = traces::new_root().to_string();
        }
        let span = traces::send_span(&event, sink.name(), sink.destination(&event));
        let delivery = sink.send(&event).await;
        deliveries.push((event, again, attempts + 1, delivery, span));
    }
    sink.flush().await;
    let mut results = Vec::with_capacity(deliveries.len());
    for (event, again, attempts, delivery, span) in deliveries {
        let result = match delivery {
            Ok(delivery) => delivery.await,
            Err(err) => Err(err),
        };
        match &result {
            Err(SinkError::Rejected(rejection)) => {
                traces::dead_lettered(&span, rejection.class.as_str(), rejection.code.as_deref());
            }
            Err(SinkError::Retryable(cause)) => traces::delivery_failed(&span, attempts, cause),
            Ok(()) => {}
        }
        results.push((event, again, attempts, result));
    }
    results
}
