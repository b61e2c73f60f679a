//! Which lines a replay takes, and what each needs: the filters, the
//! ledger, and today's normalize, routes and filter.

use std::sync::Arc;

use super::input::Line;
use super::ledger::{Ledger, LineId};
use super::outputs::with_reason;
use super::{Options, Summary};
use crate::normalize::Event;
use crate::settings::Validated;

/// What one selected line needs.
pub(super) enum Work {
    /// Publish this event.
    Publish {
        event: Event,
        /// A previous replay had it in flight.
        again: bool,
    },
    /// Its route is disabled, or a filter drops it.
    Skip,
    /// Still not an event: written to the failures file as it was.
    Unparsed {
        /// The line as it should be kept (the reason updated).
        line: Vec<u8>,
        dead_letter: bool,
    },
}

/// What a replay needs to choose: its settings and options, and the
/// summary the choice is counted in.
pub(super) struct Selector<'a> {
    pub(super) settings: &'a Validated,
    pub(super) options: &'a Options,
    pub(super) summary: &'a mut Summary,
}

impl Selector<'_> {
    /// The work for one line, if the filters select it and it is not done.
    pub(super) fn select(&mut self, raw: &[u8], id: LineId, ledger: &Ledger) -> Option<Work> {
        let options = self.options;
        let line = match Line::parse(raw) {
            Ok(line) => line,
            Err(reason) => {
                // Unreadable: no filter can speak for it; kept as it is.
                self.summary.selected += 1;
                *self.summary.by_reason.entry(reason).or_default() += 1;
                if ledger.is_done(id) && !options.force {
                    self.summary.already_done += 1;
                    return None;
                }
                let dead_letter = false;
                return (!options.dry_run).then(|| Work::Unparsed {
                    line: raw.to_vec(),
                    dead_letter,
                });
            }
        };
        let written = line.written_at();
        if options
            .since
            .is_some_and(|since| written.is_none_or(|at| at < since))
            || options
                .until
                .is_some_and(|until| written.is_none_or(|at| at >= until))
        {
            return None;
        }
        let command = line.command().unwrap_or_else(|| "unknown".to_owned());
        if options
            .command
            .as_ref()
            .is_some_and(|wanted| *wanted != command)
        {
            return None;
        }
        if options
            .reason
            .as_ref()
            .is_some_and(|wanted| !line.reason().contains(wanted.as_str()))
        {
            return None;
        }
        self.summary.selected += 1;
        *self.summary.by_command.entry(command).or_default() += 1;
        *self
            .summary
            .by_reason
            .entry(line.reason().to_owned())
            .or_default() += 1;
        if ledger.is_done(id) && !options.force {
            self.summary.already_done += 1;
            return None;
        }
        if options.dry_run {
            return None;
        }
        let again = ledger.was_in_flight(id);
        Some(match line {
            Line::DeadLetter(stored) => match stored.event.into_event() {
                Ok(event) if !self.settings.routes().route(event.kind).enabled => Work::Skip,
                Ok(event) => Work::Publish { event, again },
                Err(_) => Work::Unparsed {
                    line: raw.to_vec(),
                    dead_letter: true,
                },
            },
            Line::Invalid(invalid) => {
                let settings = self.settings;
                let source: Arc<str> = Arc::from(settings.event.source.as_str());
                match invalid.normalize(&source, settings.http.unknown_commands.publishes()) {
                    Ok(event) => {
                        let body = invalid.body().unwrap_or_default();
                        if !settings.routes().route(event.kind).enabled
                            || settings.filter().check(&body).is_err()
                        {
                            Work::Skip
                        } else {
                            Work::Publish { event, again }
                        }
                    }
                    Err(reason) => Work::Unparsed {
                        line: with_reason(raw, &reason),
                        dead_letter: false,
                    },
                }
            }
        })
    }
}
