//! [`Reports`] for PostgreSQL: table `report_counts`, one row per (period,
//! policy domain, report row) with its count, as `sqlite/reports.rs`.
//! Several nodes add to the same rows: the upsert adds atomically.

use super::{PgStore, backend};
use crate::model::*;
use crate::{Reports, Result};

impl Reports for PgStore {
    fn report_add(&self, counts: Vec<ReportCount>) -> Result<()> {
        if counts.is_empty() {
            return Ok(());
        }
        self.write(async move |tx| {
            let add = tx
                .prepare(
                    "INSERT INTO report_counts (begin_at, end_at, domain, published, row, count)
                     VALUES ($1, $2, $3, $4, $5, $6)
                     ON CONFLICT (begin_at, domain, row)
                     DO UPDATE SET count = report_counts.count + EXCLUDED.count",
                )
                .await
                .map_err(backend)?;
            // RFC 9990 §2.1: the policy reported is the last one seen.
            let publish = tx
                .prepare(
                    "UPDATE report_counts SET published = $3 WHERE begin_at = $1 AND domain = $2",
                )
                .await
                .map_err(backend)?;
            for r in &counts {
                let count = r.count.min(i64::MAX as u64) as i64;
                tx.execute(
                    &add,
                    &[&r.begin, &r.end, &r.domain, &r.published, &r.row, &count],
                )
                .await
                .map_err(backend)?;
                tx.execute(&publish, &[&r.begin, &r.domain, &r.published])
                    .await
                    .map_err(backend)?;
            }
            Ok(((), vec![]))
        })
    }

    fn report_due(&self, now: i64) -> Result<Vec<ReportCount>> {
        // One node sends the reports (the one holding the reporter lock,
        // see `coordination.rs`): two would send every report twice.
        self.block(async move |c| {
            if !self.control.reporter().await? {
                return Ok(Vec::new());
            }
            let rows = c
                .query(
                    "SELECT begin_at, end_at, domain, published, row, count FROM report_counts
                     WHERE end_at <= $1 ORDER BY begin_at, domain, row",
                    &[&now],
                )
                .await
                .map_err(backend)?;
            Ok(rows
                .iter()
                .map(|r| ReportCount {
                    begin: r.get(0),
                    end: r.get(1),
                    domain: r.get(2),
                    published: r.get(3),
                    row: r.get(4),
                    count: r.get::<_, i64>(5).max(0) as u64,
                })
                .collect())
        })
    }

    fn report_remove(&self, domain: &str, begin: i64) -> Result<()> {
        let domain = domain.to_string();
        self.write(async move |tx| {
            tx.execute(
                "DELETE FROM report_counts WHERE domain = $1 AND begin_at = $2",
                &[&domain, &begin],
            )
            .await
            .map_err(backend)?;
            Ok(((), vec![]))
        })
    }
}
