//! Chat history queries on a large store: a page of 50 messages of a chat holding
//! 100,000, at the start and deep inside, filtered, and the chat list; beside them,
//! in the same run, a primary-key lookup of one message as the baseline.
//!
//! `cargo bench --bench chat_history`

use std::time::{Duration, Instant};

use whatsapp_api::messages::{Change, ChatQuery, MessageQuery, MessageStore, StoredMessage};

const CHAT: &str = "6289685024091@s.whatsapp.net";
const MESSAGES: usize = 100_000;
const OTHER_CHATS: usize = 200;

fn message(chat: &str, i: usize) -> StoredMessage {
    StoredMessage {
        chat: chat.to_owned(),
        id: format!("3EB0{i:016X}"),
        sender: chat.to_owned(),
        sender_lid: None,
        push_name: Some("Ann".to_owned()),
        timestamp: 1_600_000_000 + i as i64,
        is_from_me: i.is_multiple_of(3),
        kind: "text".to_owned(),
        body: Some(if i % 1000 == 7 {
            format!("needle {i}")
        } else {
            format!("message number {i} with some ordinary text in it")
        }),
        quoted_id: None,
        media: None,
        raw: vec![0; 64],
        edited_at: None,
        revoked_at: None,
    }
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn time(runs: usize, mut f: impl FnMut(usize)) -> Duration {
    let samples = (0..runs)
        .map(|i| {
            let start = Instant::now();
            f(i);
            start.elapsed()
        })
        .collect();
    median(samples)
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let store = MessageStore::open(&dir.path().join("chat.db")).unwrap();
    let started = Instant::now();
    for chunk in (0..MESSAGES).collect::<Vec<_>>().chunks(5_000) {
        let changes: Vec<Change> = chunk
            .iter()
            .map(|&i| Change::Message(Box::new(message(CHAT, i))))
            .collect();
        store.apply(&changes, 1).unwrap();
    }
    let others: Vec<Change> = (0..OTHER_CHATS)
        .flat_map(|c| {
            let chat = format!("62811{c:07}@s.whatsapp.net");
            (0..20).map(move |i| Change::Message(Box::new(message(&chat, c * 100 + i))))
        })
        .collect();
    store.apply(&others, 1).unwrap();
    println!(
        "filled: {MESSAGES} messages in one chat, {} in {OTHER_CHATS} others, in {:.1} s",
        OTHER_CHATS * 20,
        started.elapsed().as_secs_f64()
    );

    let page = |offset, search: Option<&str>, from_me| MessageQuery {
        limit: 50,
        offset,
        search: search.map(str::to_owned),
        from_me,
        ..MessageQuery::default()
    };
    let baseline = time(2_000, |i| {
        let id = format!("3EB0{:016X}", (i * 7919) % MESSAGES);
        assert!(store.get(CHAT, &id).unwrap().is_some());
    });
    let cases: Vec<(&str, Duration)> = vec![
        (
            "newest 50 (with the total)",
            time(300, |_| {
                let (rows, total) = store.messages(CHAT, &page(0, None, None)).unwrap();
                assert_eq!((rows.len(), total), (50, MESSAGES as u64));
            }),
        ),
        (
            "50 at offset 50,000",
            time(100, |_| {
                let (rows, _) = store.messages(CHAT, &page(50_000, None, None)).unwrap();
                assert_eq!(rows.len(), 50);
            }),
        ),
        (
            "50 sent by me",
            time(100, |_| {
                let (rows, _) = store.messages(CHAT, &page(0, None, Some(true))).unwrap();
                assert_eq!(rows.len(), 50);
            }),
        ),
        (
            "search \"needle\"",
            time(30, |_| {
                let (rows, total) = store
                    .messages(CHAT, &page(0, Some("needle"), None))
                    .unwrap();
                assert_eq!((rows.len(), total), (50, 100));
            }),
        ),
        (
            "chat list, 25",
            time(300, |_| {
                let query = ChatQuery {
                    limit: 25,
                    ..ChatQuery::default()
                };
                let (rows, total) = store.chats(&query).unwrap();
                assert_eq!((rows.len(), total), (25, OTHER_CHATS as u64 + 1));
            }),
        ),
    ];
    println!(
        "baseline (one message by id): {:>9.3} ms",
        baseline.as_secs_f64() * 1e3
    );
    for (name, median) in cases {
        println!(
            "{name:<28} {:>9.3} ms  {:>7.1}x baseline",
            median.as_secs_f64() * 1e3,
            median.as_secs_f64() / baseline.as_secs_f64()
        );
    }
}
