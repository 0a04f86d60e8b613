//! [`Reports`] for SQLite: table `report_counts`, one row per (period,
//! policy domain, report row) with its count.

use rusqlite::params;

use super::{SqliteStore, backend};
use crate::model::*;
use crate::{Reports, Result};

impl Reports for SqliteStore {
    fn report_add(&self, counts: Vec<ReportCount>) -> Result<()> {
        if counts.is_empty() {
            return Ok(());
        }
        self.write(move |c| {
            let mut add = c
                .prepare_cached(
                    "INSERT INTO report_counts (begin_at, end_at, domain, published, row, count)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                     ON CONFLICT (begin_at, domain, row)
                     DO UPDATE SET count = count + excluded.count",
                )
                .map_err(backend)?;
            let mut publish = c
                .prepare_cached(
                    "UPDATE report_counts SET published = ?3 WHERE begin_at = ?1 AND domain = ?2",
                )
                .map_err(backend)?;
            for r in &counts {
                add.execute(params![
                    r.begin,
                    r.end,
                    r.domain,
                    r.published,
                    r.row,
                    r.count.min(i64::MAX as u64) as i64
                ])
                .map_err(backend)?;
                publish
                    .execute(params![r.begin, r.domain, r.published])
                    .map_err(backend)?;
            }
            Ok(((), vec![]))
        })
    }

    fn report_due(&self, now: i64) -> Result<Vec<ReportCount>> {
        self.read(|c| {
            let mut s = c
                .prepare_cached(
                    "SELECT begin_at, end_at, domain, published, row, count FROM report_counts
                     WHERE end_at <= ?1 ORDER BY begin_at, domain, row",
                )
                .map_err(backend)?;
            s.query_map([now], |r| {
                Ok(ReportCount {
                    begin: r.get(0)?,
                    end: r.get(1)?,
                    domain: r.get(2)?,
                    published: r.get(3)?,
                    row: r.get(4)?,
                    count: r.get::<_, i64>(5)?.max(0) as u64,
                })
            })
            .and_then(|rows| rows.collect())
            .map_err(backend)
        })
    }

    fn report_remove(&self, domain: &str, begin: i64) -> Result<()> {
        let domain = domain.to_string();
        self.write(move |c| {
            c.execute(
                "DELETE FROM report_counts WHERE domain = ?1 AND begin_at = ?2",
                params![domain, begin],
            )
            .map_err(backend)?;
            Ok(((), vec![]))
        })
    }
}
