//! Crash safety of the embedded store.
//!
//! A child process (this test binary, re-executed into `child_writer`)
//! writes concurrently and prints every acknowledged write; the parent
//! kills it with SIGKILL at a random moment, reopens the store and checks
//! that every acknowledged write is there. Damaged files must fail to open
//! with an error naming the file, never a panic.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use bytes::Bytes;
use rudder_store::{DB_FILE, EmbeddedOptions, EmbeddedStore, Error, Op, RangeRequest, Store, Txn};

const CHILD_DIR: &str = "RUDDER_CRASH_CHILD_DIR";
const CHILD_ROUND: &str = "RUDDER_CRASH_CHILD_ROUND";
const WRITERS: usize = 8;
const ROUNDS: usize = 24;

fn value_for(key: &str) -> Bytes {
    Bytes::from(format!("{key}:").repeat(8))
}

/// The child's entry point; ignored in normal runs, run by the parent as
/// `<this binary> child_writer --exact --ignored`.
#[test]
#[ignore = "entry point of the crash test's child process"]
fn child_writer() {
    let dir = std::env::var(CHILD_DIR).expect("run by acknowledged_writes_survive_sigkill");
    let round: usize = std::env::var(CHILD_ROUND).unwrap().parse().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let store = EmbeddedStore::open(EmbeddedOptions::in_dir(&dir)).unwrap();
        let mut tasks = tokio::task::JoinSet::new();
        for w in 0..WRITERS {
            let store = store.clone();
            tasks.spawn(async move {
                let counter = format!("/counter/{w}");
                for i in 0.. {
                    let key = format!("/r{round:02}/w{w}/{i:06}");
                    let ack = match i % 3 {
                        // A batch of puts in one transaction.
                        0 => {
                            let keys: Vec<_> = (0..4).map(|j| format!("{key}-{j}")).collect();
                            let ops = keys
                                .iter()
                                .map(|k| Op::put(k.clone(), value_for(k)))
                                .collect();
                            let rev = store
                                .txn(Txn {
                                    success: ops,
                                    ..Txn::default()
                                })
                                .await
                                .unwrap()
                                .revision;
                            keys.iter()
                                .map(|k| format!("PUT {k} {rev}"))
                                .collect::<Vec<_>>()
                                .join("\n")
                        }
                        // Compare-and-swap on this writer's counter.
                        1 => {
                            let (n, rev) = match store.get(&counter).await.unwrap() {
                                None => {
                                    (1, store.create(&counter, Bytes::from("1")).await.unwrap())
                                }
                                Some(kv) => {
                                    let n: u64 =
                                        std::str::from_utf8(&kv.value).unwrap().parse().unwrap();
                                    let rev = store
                                        .update(
                                            &counter,
                                            Bytes::from((n + 1).to_string()),
                                            kv.mod_revision,
                                        )
                                        .await
                                        .unwrap();
                                    (n + 1, rev)
                                }
                            };
                            format!("COUNTER {counter} {n} {rev}")
                        }
                        // Create then delete a key.
                        _ => {
                            store.create(&key, value_for(&key)).await.unwrap();
                            let (rev, _) = store.delete(&key, None).await.unwrap();
                            format!("DEL {key} {rev}")
                        }
                    };
                    let mut out = std::io::stdout().lock();
                    writeln!(out, "{ack}").unwrap();
                    out.flush().unwrap();
                }
            });
        }
        while let Some(r) = tasks.join_next().await {
            r.unwrap();
        }
    });
}

#[derive(Debug, Clone, PartialEq)]
enum Expect {
    Value { rev: i64 },
    Absent,
    CounterAtLeast(u64),
}

fn run_round(dir: &Path, round: usize, kill_after: Duration) -> Vec<String> {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "child_writer",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_DIR, dir)
        .env(CHILD_ROUND, round.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (first_tx, first_rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut lines = Vec::new();
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if lines.is_empty() {
                let _ = first_tx.send(());
            }
            lines.push(line);
        }
        lines
    });
    // Wait until writes are flowing (a hang guard, not a timing assertion),
    // then kill at a random point among them.
    first_rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the child acknowledged no write");
    #[allow(clippy::disallowed_methods)] // no runtime in this thread
    std::thread::sleep(kill_after);
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    reader.join().unwrap()
}

fn record(expect: &mut BTreeMap<String, Expect>, lines: &[String]) {
    for line in lines {
        let parts: Vec<&str> = line.split(' ').collect();
        match parts.as_slice() {
            ["PUT", key, rev] => {
                expect.insert(
                    key.to_string(),
                    Expect::Value {
                        rev: rev.parse().unwrap(),
                    },
                );
            }
            ["DEL", key, _] => {
                expect.insert(key.to_string(), Expect::Absent);
            }
            ["COUNTER", key, n, _] => {
                let n: u64 = n.parse().unwrap();
                let e = expect
                    .entry(key.to_string())
                    .or_insert(Expect::CounterAtLeast(0));
                if let Expect::CounterAtLeast(m) = e {
                    *m = (*m).max(n);
                }
            }
            // The last line may be cut by the kill: it was never complete,
            // so it was never acknowledged.
            _ => {}
        }
    }
}

async fn verify(dir: &Path, expect: &BTreeMap<String, Expect>, round: usize) {
    let store = EmbeddedStore::open(EmbeddedOptions::in_dir(dir))
        .unwrap_or_else(|e| panic!("round {round}: store did not reopen after SIGKILL: {e}"));
    let mut max_rev = 0;
    for (key, want) in expect {
        let got = store.get(key).await.unwrap();
        match (want, got) {
            (Expect::Value { rev }, Some(kv)) => {
                assert_eq!(
                    kv.value,
                    value_for(key),
                    "round {round}: {key} has the wrong value"
                );
                assert_eq!(
                    kv.mod_revision, *rev,
                    "round {round}: {key} has the wrong revision"
                );
                max_rev = max_rev.max(*rev);
            }
            (Expect::Absent, None) => {}
            (Expect::CounterAtLeast(n), Some(kv)) => {
                let v: u64 = std::str::from_utf8(&kv.value).unwrap().parse().unwrap();
                // An update may have committed just before the kill, unacknowledged.
                assert!(
                    v >= *n,
                    "round {round}: {key} is {v}, but {n} was acknowledged"
                );
            }
            (want, got) => panic!("round {round}: {key}: acknowledged {want:?}, found {got:?}"),
        }
    }
    assert!(store.current_revision().await.unwrap() >= max_rev);
    // The whole history since the start is still replayable (no compaction ran).
    let all = store.range(RangeRequest::prefix("/")).await.unwrap();
    assert!(all.kvs.len() >= expect.values().filter(|e| **e != Expect::Absent).count());
    store.close().await;
}

#[test]
fn acknowledged_writes_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let seed = fastrand::u64(..);
    println!("seed {seed}");
    let mut rng = fastrand::Rng::with_seed(seed);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut expect = BTreeMap::new();
    let mut acknowledged = 0;
    for round in 0..ROUNDS {
        let kill_after = Duration::from_millis(rng.u64(0..150));
        let lines = run_round(dir.path(), round, kill_after);
        acknowledged += lines.len();
        record(&mut expect, &lines);
        rt.block_on(verify(dir.path(), &expect, round));
    }
    println!("{ROUNDS} rounds, {acknowledged} acknowledged writes checked");
    assert!(acknowledged > ROUNDS, "the children barely wrote anything");
}

fn write_some_data(dir: &Path) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = EmbeddedStore::open(EmbeddedOptions::in_dir(dir)).unwrap();
        for t in 0..20 {
            let ops = (0..100)
                .map(|i| Op::put(format!("/k/{t:02}/{i:03}"), vec![b'x'; 2000]))
                .collect();
            store
                .txn(Txn {
                    success: ops,
                    ..Txn::default()
                })
                .await
                .unwrap();
        }
        store.close().await;
    });
}

fn open_error(dir: &Path) -> String {
    match EmbeddedStore::open(EmbeddedOptions::in_dir(dir)) {
        Ok(_) => panic!("a damaged file opened"),
        Err(e @ Error::Open { .. }) => {
            println!("{e}");
            e.to_string()
        }
        Err(e) => panic!("expected an open error, got {e:?}"),
    }
}

#[test]
fn truncated_file_fails_to_open_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    write_some_data(dir.path());
    let file = dir.path().join(DB_FILE);
    for keep in [0.5, 0.1] {
        let len = std::fs::metadata(&file).unwrap().len();
        let f = std::fs::OpenOptions::new().write(true).open(&file).unwrap();
        f.set_len((len as f64 * keep) as u64).unwrap();
        drop(f);
        let msg = open_error(dir.path());
        assert!(msg.contains(&file.display().to_string()), "{msg}");
    }
}

#[test]
fn garbage_file_fails_to_open_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(DB_FILE);
    let mut rng = fastrand::Rng::with_seed(7);
    std::fs::write(
        &file,
        (0..256 * 1024).map(|_| rng.u8(..)).collect::<Vec<_>>(),
    )
    .unwrap();
    let msg = open_error(dir.path());
    assert!(msg.contains(&file.display().to_string()), "{msg}");
}

#[test]
fn corrupted_pages_are_detected_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    write_some_data(dir.path());
    let file = dir.path().join(DB_FILE);
    let mut data = std::fs::read(&file).unwrap();
    // Overwrite a stretch in the middle of the file, past the header.
    let mid = data.len() / 2;
    for b in &mut data[mid..mid + 64 * 1024] {
        *b ^= 0x5a;
    }
    std::fs::write(&file, &data).unwrap();
    let msg = open_error(dir.path());
    assert!(msg.contains(&file.display().to_string()), "{msg}");
}

#[test]
fn a_second_open_of_the_same_store_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let _first = EmbeddedStore::open(EmbeddedOptions::in_dir(dir.path())).unwrap();
    let msg = open_error(dir.path());
    assert!(msg.contains("already open"), "{msg}");
}
