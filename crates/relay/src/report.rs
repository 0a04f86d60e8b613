//! Sending DMARC aggregate reports (RFC 9990): the SMTP side counts what
//! DMARC saw ([`Collector`]); here the counts go to the store now and
//! then, and each report whose period is over is mailed — through the
//! outbound queue, like any mail — to the `rua=` addresses that may
//! receive it (external ones only when their domain consents, RFC 9990
//! §4). The relay DKIM-signs it when the reporter's domain has a key.
//!
//! A crash between queueing a report and removing its counts sends it
//! twice; the Report-ID and file name are the same both times (RFC 9990
//! §3.2), so the consumer can drop the copy.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use postamt_auth::dns::Dns;
use postamt_auth::report::{self, Collector, Counted, Reporter};
use postamt_store::{
    Outbound, OutboundEnvelope, QueuedRecipient, ReportCount, SharedStore, blocking,
};

/// Who reports, how often, and the DNS to check destinations with.
pub struct Reports<D> {
    pub reporter: Reporter,
    pub collector: Arc<Collector>,
    pub dns: D,
}

/// How often the counts go to the store: at most this long, and at least
/// once per reporting period.
const FLUSH: Duration = Duration::from_secs(60);

impl<D: Dns + Send + 'static> Reports<D> {
    /// Flushes and sends until `stop`, then flushes once more (the counts
    /// of the current period wait in the store for the next start).
    pub async fn run(self, store: SharedStore, stop: impl Future<Output = ()>) {
        let every = FLUSH.min(Duration::from_secs(self.collector.interval().max(1) as u64));
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(stop);
        loop {
            tokio::select! {
                _ = &mut stop => break,
                _ = tick.tick() => {}
            }
            if let Err(e) = self
                .pass(&store, postamt_wire::time::unix_now() as i64)
                .await
            {
                tracing::warn!(error = %e, "DMARC reports: pass failed");
            }
        }
        if let Err(e) = self.flush(&store).await {
            tracing::warn!(error = %e, "DMARC reports: counts not saved at stop");
        }
    }

    /// Moves the collector's counts into the store.
    pub async fn flush(&self, store: &SharedStore) -> postamt_store::Result<()> {
        let counts: Vec<ReportCount> = self
            .collector
            .take()
            .into_iter()
            .map(|c| ReportCount {
                begin: c.begin,
                end: c.end,
                domain: c.domain,
                published: c.published,
                row: c.row,
                count: c.count,
            })
            .collect();
        if counts.is_empty() {
            return Ok(());
        }
        let s = Arc::clone(store);
        blocking(move || s.report_add(counts)).await
    }

    /// One pass: flush, then queue every report whose period ended by
    /// `now`. Returns how many report mails were queued.
    pub async fn pass(&self, store: &SharedStore, now: i64) -> postamt_store::Result<usize> {
        self.flush(store).await?;
        let s = Arc::clone(store);
        let due = blocking(move || s.report_due(now)).await?;
        if due.is_empty() {
            return Ok(0);
        }
        let counted: Vec<Counted> = due
            .into_iter()
            .map(|c| Counted {
                begin: c.begin,
                end: c.end,
                domain: c.domain,
                published: c.published,
                row: c.row,
                count: c.count,
            })
            .collect();
        let mut queued = 0;
        for r in report::reports(&counted) {
            let domain = r.published.domain.clone();
            let (to, refused) =
                report::authorized_destinations(&self.dns, &domain, &r.published.rua).await;
            for (address, why) in &refused {
                tracing::info!(%domain, %address, reason = %why, "DMARC report: destination refused (RFC 9990 §4)");
            }
            let date = postamt_wire::time::rfc5322_date(now.max(0) as u64);
            let mut content = report::report_message(&self.reporter, &r, &to, &date);
            // RFC 9990 §3: a destination whose size limit the report
            // exceeds MUST NOT be used.
            let fits = |a: &String| {
                r.published
                    .rua_limits
                    .iter()
                    .find(|(l, _)| l.eq_ignore_ascii_case(a))
                    .is_none_or(|(_, max)| content.len() as u64 <= *max)
            };
            let (to, too_big): (Vec<String>, Vec<String>) = to.into_iter().partition(fits);
            for address in &too_big {
                tracing::info!(%domain, %address, octets = content.len(), "DMARC report: larger than the address's size limit (RFC 9990 §3)");
            }
            if !too_big.is_empty() && !to.is_empty() {
                content = report::report_message(&self.reporter, &r, &to, &date);
            }
            if !to.is_empty() {
                let entry = Outbound {
                    sender: self.reporter.email.clone(),
                    recipients: to.iter().map(QueuedRecipient::new).collect(),
                    envelope: OutboundEnvelope::default(),
                    content,
                };
                let s = Arc::clone(store);
                let id = blocking(move || s.enqueue(entry)).await?;
                tracing::info!(%domain, queue_id = id.0, rows = r.rows.len(), to = %to.join(","), "DMARC report queued");
                queued += 1;
            }
            let s = Arc::clone(store);
            let begin = r.begin;
            blocking(move || s.report_remove(&domain, begin)).await?;
        }
        Ok(queued)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use postamt_auth::dmarc;
    use postamt_auth::dns::{Record, Zone};
    use postamt_auth::report::{Observation, Published, Row};
    use postamt_store::{SqliteOptions, SqliteStore};

    fn observation(domain: &str, rua: &str, ip: &str) -> Observation {
        let r = dmarc::parse(&format!("v=DMARC1; p=reject; rua={rua}")).unwrap();
        Observation {
            published: Published::new(domain, &r, "psl"),
            row: Row {
                source_ip: ip.into(),
                header_from: domain.into(),
                envelope_from: domain.into(),
                disposition: "reject".into(),
                dkim: "fail".into(),
                spf: "fail".into(),
                reasons: vec![],
                dkim_results: vec![],
                spf_result: Some((domain.into(), "fail".into())),
            },
        }
    }

    /// RFC 9990 §3.2, §4: counts survive in the store until their period
    /// ends, then one report per policy domain is queued for the
    /// destinations that may receive it, and the counts are gone.
    #[tokio::test]
    async fn rfc9990_reports_are_queued_once_their_period_is_over() {
        let dir = tempfile::tempdir().unwrap();
        let store: SharedStore =
            Arc::new(SqliteStore::open(SqliteOptions::new(dir.path().join("store"))).unwrap());
        let mut zone = Zone::default();
        zone.add(
            "_dmarc.bank.example",
            Some(Record::Txt("v=DMARC1; p=reject".into())),
        );
        zone.add(
            "bank.example._report._dmarc.consumer.example",
            Some(Record::Txt("v=DMARC1".into())),
        );
        let collector = Arc::new(Collector::new(100));
        let reports = Reports {
            reporter: Reporter {
                org_name: "mx.local.example".into(),
                email: "noreply-dmarc@mx.local.example".into(),
            },
            collector: Arc::clone(&collector),
            dns: zone,
        };
        let rua = "mailto:d@bank.example,mailto:r@consumer.example,mailto:v@victim.example,\
                   mailto:tiny@bank.example!1k";
        collector.add(10, observation("bank.example", rua, "192.0.2.1"));
        collector.add(20, observation("bank.example", rua, "192.0.2.1"));
        collector.add(
            30,
            observation("shop.example", "mailto:v@victim.example", "192.0.2.9"),
        );
        // The period [0, 100) is not over: counts are stored, nothing sent.
        assert_eq!(reports.pass(&store, 99).await.unwrap(), 0);
        assert_eq!(store.report_due(100).unwrap().len(), 2);
        assert!(store.queue().unwrap().is_empty());
        // Over: bank.example's report goes to its own and the consenting
        // address; shop.example's only destination did not consent.
        assert_eq!(reports.pass(&store, 100).await.unwrap(), 1);
        let queue = store.queue().unwrap();
        assert_eq!(queue.len(), 1);
        let to: Vec<&str> = queue[0]
            .recipients
            .iter()
            .map(|r| r.address.as_str())
            .collect();
        assert_eq!(
            to,
            ["d@bank.example", "r@consumer.example"],
            "tiny@ takes at most 1 KiB, less than the report"
        );
        assert_eq!(queue[0].sender, "noreply-dmarc@mx.local.example");
        let (_, content) = store.queue_entry(queue[0].id).unwrap().unwrap();
        let text = String::from_utf8(content).unwrap();
        assert!(
            text.contains("Subject: Report Domain: bank.example Submitter: mx.local.example"),
            "{text}"
        );
        assert!(
            store.report_due(i64::MAX).unwrap().is_empty(),
            "counts removed"
        );
        assert_eq!(reports.pass(&store, 200).await.unwrap(), 0, "sent once");
    }
}
