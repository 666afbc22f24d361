//! The outbox: pushes (and, for urgent items, text messages) for people a live connection did
//! not reach, through configurable gateway webhooks, with retries, backoff and dead letters.
//!
//! Jobs are rows written with the inbox item they carry, so a gateway that is down or a server
//! that restarts loses nothing: a job stays pending until a gateway answers 2xx, is retried
//! with exponential backoff (`backoff_base`, doubling, at most `backoff_cap`), and after
//! `max_attempts` failures is kept as a dead letter for `GET /api/admin/outbox/dead`. A job is
//! claimed with a lease, so two workers (or nodes) do not send it twice; the gateway gets the
//! notification key in the body and the `Idempotency-Key` header to drop a repeat after a
//! crash between its answer and our record of it. An item delivered live or acknowledged
//! before its job is due is not pushed, and a text message for a user without a phone number
//! is skipped (with that reason) rather than retried.

use std::time::Duration;

use serde_json::json;
use sync_core::Timestamp;

use super::scheduler::TickReport;
use super::{NotifyError, NotifyService, NotifySettings};
use crate::storage::OutboxJob;

/// Jobs claimed per round.
const BATCH: u32 = 100;
/// How long a claimed job is reserved for its worker.
const LEASE_MS: i64 = 60_000;

/// The gateway client and its endpoints.
#[derive(Clone, Debug)]
pub struct Gateways {
    client: reqwest::Client,
    push: Option<String>,
    sms: Option<String>,
}

impl Gateways {
    pub fn new(settings: &NotifySettings) -> Result<Self, NotifyError> {
        let client = reqwest::Client::builder()
            .timeout(settings.gateway_timeout)
            .build()
            .map_err(|e| NotifyError::Gateway(e.to_string()))?;
        Ok(Gateways {
            client,
            push: settings.push_url.clone(),
            sms: settings.sms_url.clone(),
        })
    }

    /// Posts one job; `Err` carries why it failed, for the job's record.
    async fn send(&self, job: &OutboxJob) -> Result<(), String> {
        let (url, body) = match job.channel.as_str() {
            "push" => (
                self.push.as_ref(),
                json!({
                    "key": job.key, "user": job.user_id, "kind": job.kind, "text": job.text,
                    "doc": job.doc, "urgent": job.urgent != 0, "cursor": job.inbox_seq,
                }),
            ),
            "sms" => {
                let phone = job.phone.as_deref().unwrap_or_default();
                (
                    self.sms.as_ref(),
                    json!({ "key": job.key, "user": job.user_id, "phone": phone, "text": job.text }),
                )
            }
            other => return Err(format!("unknown channel {other:?}")),
        };
        let Some(url) = url else {
            return Err(format!("no {} gateway is configured", job.channel));
        };
        let response = self
            .client
            .post(url)
            .header(
                "Idempotency-Key",
                format!("{}|{}|{}", job.key, job.user_id, job.channel),
            )
            .json(&body)
            .send()
            .await
            .map_err(|e| format!("gateway unreachable: {e}"))?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(format!("gateway answered {}", response.status()))
        }
    }
}

/// The wait before attempt `attempts + 1`, after `attempts` failures.
pub fn backoff(settings: &NotifySettings, attempts: u32) -> Duration {
    let factor = 2u32.saturating_pow(attempts.saturating_sub(1));
    settings.backoff_base.saturating_mul(factor).min(settings.backoff_cap)
}

/// Why a job is not sent at all: `Some(None)` when the item reached its
/// user another way (delivered live, or acknowledged), `Some(Some(reason))`
/// when sending it is wrong or useless; `None` to send it.
fn skip_reason(job: &OutboxJob) -> Option<Option<&'static str>> {
    if job.delivered_at.is_some() || job.acked.is_some_and(|a| a >= job.inbox_seq) {
        Some(None)
    } else if job.taken_back {
        Some(Some("the tier above refused the document whole"))
    } else if job.channel == "sms" && job.phone.is_none() {
        // Retrying will not give the user a phone number; the push channel still applies.
        Some(Some("the user has no phone number"))
    } else {
        None
    }
}

impl NotifyService {
    /// Sends the due outbox jobs, in rounds until none is due.
    pub(super) async fn work_outbox(&self, now: Timestamp, report: &mut TickReport) -> Result<(), NotifyError> {
        if !self.inner.settings.outbox_enabled() {
            return Ok(());
        }
        let storage = &self.inner.storage;
        let settings = &self.inner.settings;
        loop {
            let jobs = storage.outbox().claim(now, LEASE_MS, BATCH).await?;
            if jobs.is_empty() {
                return Ok(());
            }
            for job in jobs {
                if let Some(why) = skip_reason(&job) {
                    storage
                        .outbox()
                        .finish(job.id, "skipped", job.attempts, why, now)
                        .await?;
                    report.skipped += 1;
                    continue;
                }
                let attempts = job.attempts + 1;
                match self.inner.gateways.send(&job).await {
                    Ok(()) => {
                        storage.outbox().finish(job.id, "sent", attempts, None, now).await?;
                        report.sent += 1;
                    }
                    Err(why) if attempts >= i64::from(settings.max_attempts) => {
                        tracing::warn!(key = %job.key, user = %job.user_id, error = %why, "outbox job gave up");
                        storage
                            .outbox()
                            .finish(job.id, "dead", attempts, Some(&why), now)
                            .await?;
                        report.dead += 1;
                    }
                    Err(why) => {
                        let wait = backoff(settings, u32::try_from(attempts).unwrap_or(u32::MAX));
                        let next = now.plus_millis(i64::try_from(wait.as_millis()).unwrap_or(i64::MAX));
                        storage.outbox().retry(job.id, attempts, next, &why).await?;
                        report.retried += 1;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let settings = NotifySettings {
            backoff_base: Duration::from_secs(30),
            backoff_cap: Duration::from_secs(300),
            ..NotifySettings::default()
        };
        let waits: Vec<u64> = (1..=6).map(|a| backoff(&settings, a).as_secs()).collect();
        assert_eq!(waits, [30, 60, 120, 240, 300, 300]);
    }
}
