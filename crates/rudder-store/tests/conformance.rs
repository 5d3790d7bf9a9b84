//! The store contract, run unchanged against every backend: the embedded
//! store in a temp dir and a real etcd (Debian `etcd-server`) on a free
//! loopback port.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use rudder_store::{
    Compare, EmbeddedOptions, EmbeddedStore, Error, EtcdOptions, EtcdStore, Event, EventKind,
    MAX_REQUEST_BYTES, Op, OpResult, RangeRequest, Revision, Store, Txn, WatchStream,
};

struct Fixture {
    store: Arc<dyn Store>,
    _guard: Box<dyn std::any::Any + Send>,
}

impl Fixture {
    async fn embedded() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(EmbeddedOptions::in_dir(dir.path())).unwrap();
        Self {
            store: Arc::new(store),
            _guard: Box::new(dir),
        }
    }

    async fn etcd() -> Self {
        let server = tokio::task::spawn_blocking(rudder_testing::EtcdServer::start)
            .await
            .unwrap()
            .expect("start etcd");
        let opts = EtcdOptions::from_endpoint_list(server.endpoint());
        let store = EtcdStore::connect(opts).await.unwrap();
        Self {
            store: Arc::new(store),
            _guard: Box::new(server),
        }
    }
}

macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        mod embedded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let f = super::Fixture::embedded().await;
                    super::$case(f.store.clone()).await;
                }
            )*
        }
        mod etcd {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let f = super::Fixture::etcd().await;
                    super::$case(f.store.clone()).await;
                }
            )*
        }
    };
}

conformance!(
    crud_follows_etcd_revision_semantics,
    cas_conflicts_return_the_current_value,
    txn_applies_all_ops_at_one_revision,
    txn_without_writes_keeps_the_revision,
    txn_limits_are_enforced,
    range_paginates_in_key_order_within_the_prefix,
    range_reads_past_revisions,
    range_rejects_future_revisions,
    watch_replays_history_then_streams_live_events,
    watch_from_zero_sees_only_new_writes,
    watch_delivers_deletes_with_the_previous_value,
    compaction_rejects_old_reads_and_watches,
    compaction_keeps_what_later_revisions_need,
    concurrent_writers_get_distinct_revisions_and_lose_no_update,
    large_values_up_to_the_limit_round_trip,
    many_keys_page_through_in_order,
);

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

async fn next_event(w: &mut WatchStream) -> Event {
    // A hang guard, not a speed assertion.
    tokio::time::timeout(Duration::from_secs(30), w.next())
        .await
        .expect("no watch event within 30s")
        .expect("watch stream ended")
        .expect("watch error")
}

async fn crud_follows_etcd_revision_semantics(s: Arc<dyn Store>) {
    let start = s.current_revision().await.unwrap();
    let r1 = s.create("/a/one", b("v1")).await.unwrap();
    assert_eq!(r1, start + 1, "each write bumps the revision by one");
    let kv = s
        .get("/a/one")
        .await
        .unwrap()
        .expect("created key is readable");
    assert_eq!(
        (kv.create_revision, kv.mod_revision, kv.version),
        (r1, r1, 1)
    );
    assert_eq!(kv.value, b("v1"));

    let r2 = s.update("/a/one", b("v2"), r1).await.unwrap();
    assert_eq!(r2, r1 + 1);
    let kv = s.get("/a/one").await.unwrap().unwrap();
    assert_eq!(
        (kv.create_revision, kv.mod_revision, kv.version),
        (r1, r2, 2)
    );
    assert_eq!(kv.value, b("v2"));

    assert!(matches!(
        s.create("/a/one", b("x")).await,
        Err(Error::AlreadyExists { .. })
    ));
    assert_eq!(
        s.current_revision().await.unwrap(),
        r2,
        "a failed create writes nothing"
    );

    let (r3, prev) = s.delete("/a/one", Some(r2)).await.unwrap();
    assert_eq!(r3, r2 + 1);
    assert_eq!(prev.value, b("v2"));
    assert_eq!(s.get("/a/one").await.unwrap(), None);
    assert!(matches!(
        s.delete("/a/one", None).await,
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        s.update("/a/one", b("x"), r2).await,
        Err(Error::Conflict { current: None, .. })
    ));

    // Re-created keys start a new life: new create revision, version 1.
    let r4 = s.create("/a/one", b("again")).await.unwrap();
    let kv = s.get("/a/one").await.unwrap().unwrap();
    assert_eq!((kv.create_revision, kv.version), (r4, 1));
    assert_eq!(s.current_revision().await.unwrap(), r4);
}

async fn cas_conflicts_return_the_current_value(s: Arc<dyn Store>) {
    let r1 = s.create("/cas/k", b("first")).await.unwrap();
    let r2 = s.update("/cas/k", b("second"), r1).await.unwrap();
    match s.update("/cas/k", b("stale"), r1).await {
        Err(Error::Conflict {
            key,
            expected,
            current: Some(current),
        }) => {
            assert_eq!(key, "/cas/k");
            assert_eq!(expected, r1);
            assert_eq!(current.mod_revision, r2);
            assert_eq!(current.value, b("second"));
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    match s.delete("/cas/k", Some(r1)).await {
        Err(Error::Conflict {
            current: Some(current),
            ..
        }) => assert_eq!(current.mod_revision, r2),
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(
        s.get("/cas/k").await.unwrap().unwrap().value,
        b("second"),
        "nothing was lost"
    );
}

async fn txn_applies_all_ops_at_one_revision(s: Arc<dyn Store>) {
    let r0 = s.create("/t/gone", b("x")).await.unwrap();
    let resp = s
        .txn(Txn {
            compare: vec![
                Compare::absent("/t/a"),
                Compare::mod_revision("/t/gone", r0),
            ],
            success: vec![
                Op::put("/t/a", "A"),
                Op::put("/t/b", "B"),
                Op::Delete("/t/gone".into()),
                Op::Get("/t/missing".into()),
            ],
            failure: vec![],
        })
        .await
        .unwrap();
    assert!(resp.succeeded);
    assert_eq!(resp.revision, r0 + 1, "a transaction is one revision");
    assert_eq!(resp.results.len(), 4);
    assert!(matches!(&resp.results[0], OpResult::Put { prev: None }));
    assert!(matches!(&resp.results[2], OpResult::Delete { prev: Some(p) } if p.value == b("x")));
    assert!(matches!(&resp.results[3], OpResult::Get(None)));
    for key in ["/t/a", "/t/b"] {
        assert_eq!(
            s.get(key).await.unwrap().unwrap().mod_revision,
            resp.revision
        );
    }

    // A failed compare runs the failure branch instead.
    let resp = s
        .txn(Txn {
            compare: vec![Compare::absent("/t/a")],
            success: vec![Op::put("/t/a", "never")],
            failure: vec![Op::Get("/t/a".into()), Op::put("/t/c", "C")],
        })
        .await
        .unwrap();
    assert!(!resp.succeeded);
    assert!(matches!(&resp.results[0], OpResult::Get(Some(kv)) if kv.value == b("A")));
    assert_eq!(s.get("/t/a").await.unwrap().unwrap().value, b("A"));
    assert_eq!(s.get("/t/c").await.unwrap().unwrap().value, b("C"));
}

async fn txn_without_writes_keeps_the_revision(s: Arc<dyn Store>) {
    s.create("/nw/k", b("v")).await.unwrap();
    let before = s.current_revision().await.unwrap();
    let resp = s
        .txn(Txn {
            compare: vec![Compare::absent("/nw/k")],
            success: vec![Op::put("/nw/k", "no")],
            failure: vec![Op::Get("/nw/k".into()), Op::Delete("/nw/missing".into())],
        })
        .await
        .unwrap();
    assert!(!resp.succeeded);
    assert!(matches!(&resp.results[1], OpResult::Delete { prev: None }));
    assert_eq!(resp.revision, before);
    assert_eq!(
        s.current_revision().await.unwrap(),
        before,
        "reads and no-op deletes write nothing"
    );
}

async fn txn_limits_are_enforced(s: Arc<dyn Store>) {
    let too_many = Txn {
        success: (0..129)
            .map(|i| Op::put(format!("/lim/{i}"), "v"))
            .collect(),
        ..Txn::default()
    };
    assert!(matches!(s.txn(too_many).await, Err(Error::InvalidTxn(_))));
    let twice = Txn {
        success: vec![Op::put("/lim/x", "1"), Op::put("/lim/x", "2")],
        ..Txn::default()
    };
    assert!(matches!(s.txn(twice).await, Err(Error::InvalidTxn(_))));
    assert!(
        s.range(RangeRequest::prefix("/lim/"))
            .await
            .unwrap()
            .kvs
            .is_empty()
    );
}

async fn range_paginates_in_key_order_within_the_prefix(s: Arc<dyn Store>) {
    for i in (0..25).rev() {
        s.create(&format!("/p/{i:03}"), b(&format!("v{i}")))
            .await
            .unwrap();
    }
    // Neighbours that share a textual prefix but are not under "/p/".
    s.create("/p", b("parent")).await.unwrap();
    s.create("/pa", b("sibling")).await.unwrap();
    s.create("/q/000", b("other")).await.unwrap();

    let all = s.range(RangeRequest::prefix("/p/")).await.unwrap();
    let keys: Vec<_> = all.kvs.iter().map(|kv| kv.key.clone()).collect();
    let want: Vec<_> = (0..25).map(|i| format!("/p/{i:03}")).collect();
    assert_eq!(keys, want);
    assert!(!all.more);

    let mut paged = Vec::new();
    let mut req = RangeRequest::prefix("/p/").limit(10);
    let mut pages = 0;
    loop {
        let page = s.range(req.clone()).await.unwrap();
        pages += 1;
        assert!(page.kvs.len() <= 10);
        paged.extend(page.kvs.iter().map(|kv| kv.key.clone()));
        if !page.more {
            break;
        }
        req = req.start_after(page.kvs.last().unwrap().key.clone());
    }
    assert_eq!(pages, 3);
    assert_eq!(paged, want);

    // Counting what is left past a page (a list's remainingItemCount).
    let counted = s
        .range(RangeRequest::prefix("/p/").limit(10).with_count())
        .await
        .unwrap();
    assert_eq!((counted.kvs.len(), counted.remaining), (10, Some(15)));
    let last = s
        .range(
            RangeRequest::prefix("/p/")
                .limit(10)
                .start_after("/p/019")
                .with_count(),
        )
        .await
        .unwrap();
    assert_eq!(
        (last.kvs.len(), last.remaining, last.more),
        (5, Some(0), false)
    );
    let uncounted = s
        .range(RangeRequest::prefix("/p/").limit(10))
        .await
        .unwrap();
    assert_eq!(uncounted.remaining, None);

    let exact = s
        .range(RangeRequest::prefix("/p/").limit(25))
        .await
        .unwrap();
    assert_eq!(exact.kvs.len(), 25);
    assert!(!exact.more, "no more keys after exactly `limit`");

    let everything = s.range(RangeRequest::prefix("")).await.unwrap();
    assert_eq!(
        everything.kvs.len(),
        28,
        "an empty prefix covers the whole keyspace"
    );
}

async fn range_reads_past_revisions(s: Arc<dyn Store>) {
    s.create("/h/a", b("a1")).await.unwrap();
    s.create("/h/b", b("b1")).await.unwrap();
    let ra = s.get("/h/a").await.unwrap().unwrap().mod_revision;
    let rc = s.create("/h/c", b("c1")).await.unwrap();
    let then = rc;

    s.update("/h/a", b("a2"), ra).await.unwrap();
    s.delete("/h/c", None).await.unwrap();
    s.create("/h/d", b("d1")).await.unwrap();
    s.create("/h/0", b("zero")).await.unwrap();
    let b_rev = s.get("/h/b").await.unwrap().unwrap().mod_revision;
    s.update("/h/b", b("b2"), b_rev).await.unwrap();

    let at = |rev: Revision| RangeRequest::prefix("/h/").at_revision(rev);
    let past = s.range(at(then)).await.unwrap();
    let got: BTreeMap<_, _> = past
        .kvs
        .iter()
        .map(|kv| (kv.key.as_str(), kv.value.clone()))
        .collect();
    let want: BTreeMap<_, _> = [("/h/a", b("a1")), ("/h/b", b("b1")), ("/h/c", b("c1"))].into();
    assert_eq!(got, want);
    let c = past.kvs.iter().find(|kv| kv.key == "/h/c").unwrap();
    assert_eq!((c.mod_revision, c.version), (rc, 1));
    assert!(
        past.revision > then,
        "the response carries the current revision"
    );

    // Pagination at a past revision.
    let page1 = s.range(at(then).limit(2)).await.unwrap();
    assert_eq!(
        page1
            .kvs
            .iter()
            .map(|kv| kv.key.as_str())
            .collect::<Vec<_>>(),
        ["/h/a", "/h/b"]
    );
    assert!(page1.more);
    // Keys made or deleted since do not count at a past revision.
    let counted = s.range(at(then).limit(2).with_count()).await.unwrap();
    assert_eq!(counted.remaining, Some(1));
    let page2 = s
        .range(at(then).limit(2).start_after("/h/b"))
        .await
        .unwrap();
    assert_eq!(
        page2
            .kvs
            .iter()
            .map(|kv| kv.key.as_str())
            .collect::<Vec<_>>(),
        ["/h/c"]
    );
    assert!(!page2.more);

    let now = s.range(RangeRequest::prefix("/h/")).await.unwrap();
    let keys: Vec<_> = now.kvs.iter().map(|kv| kv.key.as_str()).collect();
    assert_eq!(keys, ["/h/0", "/h/a", "/h/b", "/h/d"]);
}

async fn range_rejects_future_revisions(s: Arc<dyn Store>) {
    let rev = s.create("/f/k", b("v")).await.unwrap();
    let err = s
        .range(RangeRequest::prefix("/f/").at_revision(rev + 10))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::FutureRevision { .. }), "{err:?}");
}

async fn watch_replays_history_then_streams_live_events(s: Arc<dyn Store>) {
    let r1 = s.create("/w/a", b("1")).await.unwrap();
    s.create("/other/x", b("not watched")).await.unwrap();
    let r2 = s.update("/w/a", b("2"), r1).await.unwrap();

    let mut w = s.watch("/w/", r1).await.unwrap();
    let e = next_event(&mut w).await;
    assert_eq!(
        (e.kind, e.kv.key.as_str(), e.revision()),
        (EventKind::Put, "/w/a", r1)
    );
    assert_eq!(e.prev, None);
    let e = next_event(&mut w).await;
    assert_eq!(
        (e.revision(), e.kv.value.clone(), e.kv.version),
        (r2, b("2"), 2)
    );
    assert_eq!(e.prev.as_ref().map(|p| p.value.clone()), Some(b("1")));

    // Live events follow the replay without a gap or a duplicate.
    let mut live = Vec::new();
    for i in 0..20 {
        live.push(s.create(&format!("/w/live{i:02}"), b("x")).await.unwrap());
        s.create(&format!("/other/{i}"), b("x")).await.unwrap();
    }
    for rev in live {
        let e = next_event(&mut w).await;
        assert_eq!(e.revision(), rev);
        assert!(e.kv.key.starts_with("/w/"));
    }
}

async fn watch_from_zero_sees_only_new_writes(s: Arc<dyn Store>) {
    s.create("/z/old", b("x")).await.unwrap();
    let mut w = s.watch("/z/", 0).await.unwrap();
    let rev = s.create("/z/new", b("y")).await.unwrap();
    let e = next_event(&mut w).await;
    assert_eq!((e.kv.key.as_str(), e.revision()), ("/z/new", rev));
}

async fn watch_delivers_deletes_with_the_previous_value(s: Arc<dyn Store>) {
    let r1 = s.create("/d/k", b("val")).await.unwrap();
    let mut w = s.watch("/d/", r1 + 1).await.unwrap();
    let (rd, _) = s.delete("/d/k", None).await.unwrap();
    let e = next_event(&mut w).await;
    assert_eq!(e.kind, EventKind::Delete);
    assert_eq!((e.kv.key.as_str(), e.kv.mod_revision), ("/d/k", rd));
    assert!(e.kv.value.is_empty());
    let prev = e.prev.expect("delete carries the previous value");
    assert_eq!((prev.value, prev.mod_revision), (b("val"), r1));
}

async fn compaction_rejects_old_reads_and_watches(s: Arc<dyn Store>) {
    let r1 = s.create("/c/a", b("1")).await.unwrap();
    let r2 = s.update("/c/a", b("2"), r1).await.unwrap();
    let r3 = s.create("/c/b", b("3")).await.unwrap();
    s.compact(r2).await.unwrap();

    let err = s
        .range(RangeRequest::prefix("/c/").at_revision(r1))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Compacted { requested, .. } if requested == r1),
        "{err:?}"
    );
    let err = s
        .watch("/c/", r1)
        .await
        .err()
        .expect("watch from a compacted revision fails");
    assert!(matches!(err, Error::Compacted { .. }), "{err:?}");

    // The compaction revision itself stays readable and watchable.
    let at = s
        .range(RangeRequest::prefix("/c/").at_revision(r2))
        .await
        .unwrap();
    assert_eq!(at.kvs.len(), 1);
    assert_eq!(at.kvs[0].value, b("2"));
    let mut w = s.watch("/c/", r3).await.unwrap();
    assert_eq!(next_event(&mut w).await.revision(), r3);

    let err = s.compact(r1).await.unwrap_err();
    assert!(
        matches!(err, Error::Compacted { .. }),
        "compacting backwards: {err:?}"
    );
    let err = s.compact(r3 + 100).await.unwrap_err();
    assert!(
        matches!(err, Error::FutureRevision { .. }),
        "compacting the future: {err:?}"
    );
    assert_eq!(
        s.get("/c/a").await.unwrap().unwrap().value,
        b("2"),
        "current data survives"
    );
}

async fn compaction_keeps_what_later_revisions_need(s: Arc<dyn Store>) {
    let ra = s.create("/k/a", b("a1")).await.unwrap();
    let rb = s.create("/k/b", b("b1")).await.unwrap();
    s.update("/k/b", b("b2"), rb).await.unwrap();
    s.create("/k/c", b("c1")).await.unwrap();
    s.delete("/k/c", None).await.unwrap();
    let rd = s.create("/k/d", b("d1")).await.unwrap();
    s.compact(rd).await.unwrap();

    let values = |kvs: &[rudder_store::KeyValue]| {
        kvs.iter()
            .map(|kv| (kv.key.clone(), kv.value.clone()))
            .collect::<Vec<_>>()
    };
    let want_at_rd = vec![
        ("/k/a".to_string(), b("a1")),
        ("/k/b".to_string(), b("b2")),
        ("/k/d".to_string(), b("d1")),
    ];
    let at_rd = s
        .range(RangeRequest::prefix("/k/").at_revision(rd))
        .await
        .unwrap();
    assert_eq!(values(&at_rd.kvs), want_at_rd);

    // A key untouched since before the compaction keeps its metadata, and a
    // later change still carries it as the previous value.
    let ra2 = s.update("/k/a", b("a2"), ra).await.unwrap();
    let at_rd = s
        .range(RangeRequest::prefix("/k/").at_revision(rd))
        .await
        .unwrap();
    assert_eq!(
        values(&at_rd.kvs),
        want_at_rd,
        "a past read undoes the later update"
    );
    let mut w = s.watch("/k/", rd).await.unwrap();
    let e = next_event(&mut w).await;
    assert_eq!((e.kv.key.as_str(), e.revision()), ("/k/d", rd));
    let e = next_event(&mut w).await;
    assert_eq!(e.revision(), ra2);
    let prev = e.prev.expect("the update carries the pre-compaction value");
    assert_eq!(
        (prev.value, prev.mod_revision, prev.create_revision),
        (b("a1"), ra, ra)
    );

    s.compact(ra2).await.unwrap();
    let now = s.range(RangeRequest::prefix("/k/")).await.unwrap();
    let want_now = vec![
        ("/k/a".to_string(), b("a2")),
        ("/k/b".to_string(), b("b2")),
        ("/k/d".to_string(), b("d1")),
    ];
    assert_eq!(values(&now.kvs), want_now);
    let kv = s.get("/k/a").await.unwrap().unwrap();
    assert_eq!((kv.create_revision, kv.version), (ra, 2));
}

async fn concurrent_writers_get_distinct_revisions_and_lose_no_update(s: Arc<dyn Store>) {
    const WRITERS: usize = 16;
    const EACH: usize = 40;
    s.create("/cc/counter", b("0")).await.unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..WRITERS {
        let s = s.clone();
        tasks.spawn(async move {
            let mut revs = Vec::new();
            for i in 0..EACH {
                revs.push(
                    s.create(&format!("/cc/w{w:02}/{i:03}"), b("x"))
                        .await
                        .unwrap(),
                );
                // Read-modify-write of one shared counter, retried on conflict.
                loop {
                    let kv = s.get("/cc/counter").await.unwrap().unwrap();
                    let n: u64 = std::str::from_utf8(&kv.value).unwrap().parse().unwrap();
                    match s
                        .update("/cc/counter", b(&(n + 1).to_string()), kv.mod_revision)
                        .await
                    {
                        Ok(rev) => {
                            revs.push(rev);
                            break;
                        }
                        Err(Error::Conflict { .. }) => continue,
                        Err(e) => panic!("{e}"),
                    }
                }
            }
            revs
        });
    }
    let mut all = Vec::new();
    while let Some(revs) = tasks.join_next().await {
        all.extend(revs.unwrap());
    }
    let n = all.len();
    all.sort_unstable();
    all.dedup();
    assert_eq!(all.len(), n, "two writes got the same revision");
    assert_eq!(s.current_revision().await.unwrap(), *all.last().unwrap());
    let counter = s.get("/cc/counter").await.unwrap().unwrap();
    assert_eq!(
        counter.value,
        b(&(WRITERS * EACH).to_string()),
        "an update was lost"
    );
    let keys = s.range(RangeRequest::prefix("/cc/w")).await.unwrap();
    assert_eq!(keys.kvs.len(), WRITERS * EACH);
}

async fn large_values_up_to_the_limit_round_trip(s: Arc<dyn Store>) {
    let key = "/big/k";
    let max = vec![0xabu8; MAX_REQUEST_BYTES - key.len()];
    let rev = s.create(key, Bytes::from(max.clone())).await.unwrap();
    let kv = s.get(key).await.unwrap().unwrap();
    assert_eq!(kv.value.len(), max.len());
    assert_eq!(kv.value.as_ref(), max.as_slice());

    let over = vec![0u8; MAX_REQUEST_BYTES - key.len() + 1];
    let err = s.update(key, Bytes::from(over), rev).await.unwrap_err();
    assert!(matches!(err, Error::ValueTooLarge { .. }), "{err:?}");
    assert!(err.to_string().contains("over the limit"), "{err}");
    assert_eq!(
        s.get(key).await.unwrap().unwrap().mod_revision,
        rev,
        "the big value is intact"
    );

    // Watches carry big values whole.
    let mut w = s.watch("/big/", rev).await.unwrap();
    assert_eq!(next_event(&mut w).await.kv.value.len(), max.len());
}

async fn many_keys_page_through_in_order(s: Arc<dyn Store>) {
    const KEYS: usize = 100_000;
    const PER_TXN: usize = 100;
    const WRITERS: usize = 8;
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..WRITERS {
        let s = s.clone();
        tasks.spawn(async move {
            for t in (w..KEYS / PER_TXN).step_by(WRITERS) {
                let ops = (0..PER_TXN)
                    .map(|i| {
                        let n = t * PER_TXN + i;
                        Op::put(format!("/many/{n:06}"), format!("value-{n}"))
                    })
                    .collect();
                s.txn(Txn {
                    success: ops,
                    ..Txn::default()
                })
                .await
                .unwrap();
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap();
    }
    let mut seen = 0usize;
    let mut req = RangeRequest::prefix("/many/").limit(5000);
    loop {
        let page = s.range(req.clone()).await.unwrap();
        for kv in &page.kvs {
            assert_eq!(kv.key, format!("/many/{seen:06}"));
            assert_eq!(kv.value, b(&format!("value-{seen}")));
            seen += 1;
        }
        if !page.more {
            break;
        }
        req = req.start_after(page.kvs.last().unwrap().key.clone());
    }
    assert_eq!(seen, KEYS);
}

/// The etcd backend over TLS with a client certificate (k3s'
/// `--datastore-cafile/certfile/keyfile`), against an etcd that requires one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_with_client_certificates() {
    let server = tokio::task::spawn_blocking(rudder_testing::EtcdServer::start_tls)
        .await
        .unwrap()
        .expect("start etcd with TLS");
    let tls = server.tls().unwrap().clone();
    let opts = EtcdOptions {
        ca_file: Some(tls.ca_file.clone()),
        cert_file: Some(tls.client_cert_file.clone()),
        key_file: Some(tls.client_key_file.clone()),
        ..EtcdOptions::from_endpoint_list(server.endpoint())
    };
    let store = EtcdStore::connect(opts).await.unwrap();
    let rev = store.create("/tls/k", b("v")).await.unwrap();
    assert_eq!(
        store.get("/tls/k").await.unwrap().unwrap().mod_revision,
        rev
    );

    // Without the client certificate etcd refuses us, and we say where.
    let no_cert = EtcdOptions {
        ca_file: Some(tls.ca_file.clone()),
        ..EtcdOptions::from_endpoint_list(server.endpoint())
    };
    let err = EtcdStore::connect(no_cert).await.unwrap_err();
    assert!(err.to_string().contains(server.endpoint()), "{err}");

    // Half a client identity is a configuration error, caught up front.
    let half = EtcdOptions {
        cert_file: Some(tls.client_cert_file.clone()),
        ..EtcdOptions::from_endpoint_list(server.endpoint())
    };
    let err = EtcdStore::connect(half).await.unwrap_err();
    assert!(
        err.to_string().contains("both the certificate and the key"),
        "{err}"
    );
}
