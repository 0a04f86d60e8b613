//! Checks of [`Reports`]: DMARC report counts add up per period, domain
//! and row; due means the period is over; removal is per report.

use crate::*;

fn count(begin: i64, domain: &str, published: &str, row: &str, n: u64) -> ReportCount {
    ReportCount {
        begin,
        end: begin + 100,
        domain: domain.into(),
        published: published.into(),
        row: row.into(),
        count: n,
    }
}

pub fn report_counts_add_up_and_fall_due<S: Reports + ?Sized>(
    store: impl std::ops::Deref<Target = S>,
) {
    assert!(store.report_due(i64::MAX).unwrap().is_empty());
    store.report_add(vec![]).unwrap();
    store
        .report_add(vec![
            count(0, "bank.example", "p1", "row-a", 2),
            count(0, "bank.example", "p1", "row-b", 1),
            count(0, "shop.example", "q", "row-a", 5),
            count(100, "bank.example", "p1", "row-a", 7),
        ])
        .unwrap();
    // A later flush: the same row grows, the policy seen last wins.
    store
        .report_add(vec![count(0, "bank.example", "p2", "row-a", 3)])
        .unwrap();
    assert!(store.report_due(99).unwrap().is_empty(), "period not over");
    let due = store.report_due(100).unwrap();
    assert_eq!(
        due,
        vec![
            count(0, "bank.example", "p2", "row-a", 5),
            count(0, "bank.example", "p2", "row-b", 1),
            count(0, "shop.example", "q", "row-a", 5),
        ]
    );
    store.report_remove("bank.example", 0).unwrap();
    assert_eq!(
        store.report_due(100).unwrap(),
        vec![count(0, "shop.example", "q", "row-a", 5)]
    );
    assert_eq!(store.report_due(200).unwrap().len(), 2);
    store.report_remove("shop.example", 0).unwrap();
    store.report_remove("nobody.example", 0).unwrap();
    assert_eq!(
        store.report_due(200).unwrap(),
        vec![count(100, "bank.example", "p1", "row-a", 7)]
    );
}
