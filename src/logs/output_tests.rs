//! Tests of `output.rs` (kept apart to keep that file short).

use super::*;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::Instant;

/// A writer appending to a shared buffer.
#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);

impl Write for Shared {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Shared {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

/// A writer that blocks while its gate is closed, like a stdout nobody reads.
#[derive(Clone, Default)]
struct Gated {
    out: Shared,
    gate: Arc<(Mutex<bool>, Condvar)>,
    writes: Arc<AtomicUsize>,
}

impl Gated {
    fn open(&self) {
        *self.gate.0.lock().unwrap() = true;
        self.gate.1.notify_all();
    }
}

impl Write for Gated {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        let open = self.gate.0.lock().unwrap();
        let _open = self.gate.1.wait_while(open, |o| !*o).unwrap();
        self.out.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

struct Broken(Arc<AtomicUsize>);

impl Write for Broken {
    fn write(&mut self, _: &[u8]) -> io::Result<usize> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Err(io::Error::from(io::ErrorKind::BrokenPipe))
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn text_output(colour: bool, timestamps: bool) -> (Output, Shared) {
    let buf = Shared::default();
    let out = Output::start_with(
        Box::new(buf.clone()),
        LogFormat::Text,
        timestamps,
        colour,
        None,
    );
    (out, buf)
}

fn apps() -> Vec<(String, u32)> {
    vec![("web".into(), 2), ("worker".into(), 1)]
}

fn line(out: &Output, app: &str, i: u32, s: &str) {
    out.try_line(app, i, Stream::Stdout, s.as_bytes().to_vec(), false)
        .unwrap();
}

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(t.elapsed() < Duration::from_secs(10), "timed out: {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn text_prefixes_are_aligned() {
    let (out, buf) = text_output(false, false);
    out.set_apps(&apps());
    line(&out, "web", 0, "hello");
    line(&out, "worker", 0, "working");
    out.event("web.1 exited with code 1 after 0.4s");
    out.try_line("web", 1, Stream::Stderr, b"oops".to_vec(), false)
        .unwrap();
    out.finish(Duration::from_secs(5));
    assert_eq!(
        buf.text(),
        "web.0     | hello\n\
         worker.0  | working\n\
         supervise | web.1 exited with code 1 after 0.4s\n\
         web.1     | oops\n"
    );
}

#[test]
fn long_names_widen_the_prefix() {
    let (out, buf) = text_output(false, false);
    out.set_apps(&[("a".into(), 12), ("long-app-name".into(), 1)]);
    line(&out, "a", 11, "x");
    line(&out, "long-app-name", 0, "y");
    out.event("e");
    // Unknown app, longer than everything: not padded, not truncated.
    line(&out, "an-even-longer-app-name", 3, "z");
    // After a reload, the width follows the new names.
    out.set_apps(&[("a".into(), 12)]);
    line(&out, "a", 0, "w");
    out.finish(Duration::from_secs(5));
    assert_eq!(
        buf.text(),
        "a.11            | x\n\
         long-app-name.0 | y\n\
         supervise       | e\n\
         an-even-longer-app-name.3 | z\n\
         a.0       | w\n"
    );
}

#[test]
fn invalid_utf8_passes_through_and_cut_is_marked() {
    let (out, buf) = text_output(false, false);
    out.set_apps(&[("web".into(), 1)]);
    out.try_line(
        "web",
        0,
        Stream::Stdout,
        b"bad \xff\xfe end".to_vec(),
        false,
    )
    .unwrap();
    out.try_line("web", 0, Stream::Stdout, b"first half".to_vec(), true)
        .unwrap();
    line(&out, "web", 0, "second half");
    out.finish(Duration::from_secs(5));
    let want: &[u8] = b"web.0     | bad \xff\xfe end\n\
        web.0     | first half [cut: line continues]\n\
        web.0     | second half\n";
    assert_eq!(*buf.0.lock().unwrap(), want);
}

#[test]
fn colours_per_app_and_bold_for_supervise() {
    let (out, buf) = text_output(true, false);
    let many: Vec<(String, u32)> = (0..8).map(|i| (format!("app{i}"), 1)).collect();
    out.set_apps(&many);
    for i in 0..8 {
        line(&out, &format!("app{i}"), 0, "text");
    }
    out.event("hello");
    out.finish(Duration::from_secs(5));
    let text = buf.text();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "\x1b[36mapp0.0    |\x1b[0m text");
    assert_eq!(lines[1], "\x1b[33mapp1.0    |\x1b[0m text");
    // The palette cycles.
    assert_eq!(lines[6], "\x1b[36mapp6.0    |\x1b[0m text");
    assert_eq!(lines[7], "\x1b[33mapp7.0    |\x1b[0m text");
    let distinct: std::collections::HashSet<&str> = lines[..6].iter().map(|l| &l[..5]).collect();
    assert_eq!(distinct.len(), 6);
    assert_eq!(lines[8], "\x1b[1msupervise |\x1b[0m hello");
}

#[test]
fn timestamps_in_text() {
    let (out, buf) = text_output(false, true);
    out.set_apps(&[("web".into(), 1)]);
    let before = SystemTime::now() - Duration::from_millis(1);
    line(&out, "web", 0, "hello");
    out.event("ev");
    out.finish(Duration::from_secs(5));
    let after = SystemTime::now() + Duration::from_millis(1);
    let text = buf.text();
    let lines: Vec<&str> = text.lines().collect();
    for (l, rest) in lines.iter().zip(["web.0     | hello", "supervise | ev"]) {
        let (ts, tail) = l.split_once(' ').unwrap();
        assert_eq!(tail, rest);
        assert_eq!(ts.len(), "2026-11-24T19:47:59.123Z".len(), "{ts}");
        assert!(ts.ends_with('Z'));
        let t = humantime::parse_rfc3339(ts).unwrap();
        assert!(t >= before && t <= after);
    }
}

#[test]
fn json_objects() {
    let buf = Shared::default();
    // Colour and timestamps are irrelevant in json: time always, colour never.
    let out = Output::start_with(Box::new(buf.clone()), LogFormat::Json, false, true, None);
    out.set_apps(&apps());
    line(&out, "web", 1, "hello");
    out.try_line("worker", 0, Stream::Stderr, b"piece".to_vec(), true)
        .unwrap();
    out.event("web.0 exited");
    out.try_line(
        "web",
        0,
        Stream::Stdout,
        b"q\"b\\s/t\tn\rc\x1b[0m\xffe\xc3\xa9".to_vec(),
        false,
    )
    .unwrap();
    out.finish(Duration::from_secs(5));
    let text = buf.text();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4);
    let strip_time = |l: &str| {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        let ts = v["time"].as_str().unwrap().to_owned();
        humantime::parse_rfc3339(&ts).unwrap();
        assert_eq!(ts.len(), 24);
        assert!(l.starts_with(&format!("{{\"time\":\"{ts}\",")));
        l.replace(&ts, "T")
    };
    assert_eq!(
        strip_time(lines[0]),
        r#"{"time":"T","app":"web","instance":1,"stream":"stdout","line":"hello"}"#
    );
    assert_eq!(
        strip_time(lines[1]),
        r#"{"time":"T","app":"worker","instance":0,"stream":"stderr","line":"piece","cut":true}"#
    );
    assert_eq!(
        strip_time(lines[2]),
        r#"{"time":"T","app":"supervise","stream":"event","line":"web.0 exited"}"#
    );
    assert_eq!(
        strip_time(lines[3]),
        r#"{"time":"T","app":"web","instance":0,"stream":"stdout","line":"q\"b\\s/t\tn\rc\u001b[0m�eé"}"#
    );
    let v: serde_json::Value = serde_json::from_str(lines[3]).unwrap();
    assert_eq!(v["line"], "q\"b\\s/t\tn\rc\x1b[0m\u{fffd}eé");
    assert!(!text.contains("\x1b"));
}

#[test]
fn order_is_kept_under_backpressure() {
    let (out, buf) = text_output(false, false);
    out.set_apps(&[("a".into(), 3)]);
    let total = 30_000;
    let payload = "x".repeat(100);
    for n in 0..total {
        let mut l = format!("{n} {payload}").into_bytes();
        loop {
            match out.try_line("a", (n % 3) as u32, Stream::Stdout, l, false) {
                Ok(()) => break,
                Err(back) => {
                    l = back;
                    std::thread::sleep(Duration::from_micros(200));
                }
            }
        }
    }
    out.finish(Duration::from_secs(10));
    let text = buf.text();
    let mut count = 0;
    for (n, l) in text.lines().enumerate() {
        assert_eq!(l, format!("a.{}       | {n} {payload}", n % 3));
        count += 1;
    }
    assert_eq!(count, total);
}

#[test]
fn idle_output_is_flushed_promptly() {
    let (out, buf) = text_output(false, false);
    line(&out, "web", 0, "one");
    wait_until("first line", || buf.text() == "web.0     | one\n");
    out.event("two");
    wait_until("second line", || buf.text().ends_with("supervise | two\n"));
    out.finish(Duration::from_secs(5));
}

#[test]
fn events_past_their_bound_are_counted_not_kept() {
    let gated = Gated::default();
    let out = Output::start_with(Box::new(gated.clone()), LogFormat::Text, false, false, None);
    out.event("first");
    wait_until("writer blocked", || gated.writes.load(Ordering::SeqCst) > 0);
    for i in 0..EVENT_BOUND + 5 {
        out.event(&format!("event {i}"));
    }
    gated.open();
    out.finish(Duration::from_secs(10));
    let text = gated.out.text();
    assert_eq!(text.lines().count(), 1 + EVENT_BOUND + 1);
    assert!(text.contains(&format!("event {}\n", EVENT_BOUND - 1)));
    assert!(!text.contains(&format!("event {}\n", EVENT_BOUND)));
    assert!(
        text.ends_with("supervise | 5 supervise events were dropped while stdout was blocked\n")
    );
}

#[test]
fn blocked_stdout_refuses_lines_then_wakes() {
    let gated = Gated::default();
    let mut poll = mio::Poll::new().unwrap();
    let waker = Arc::new(mio::Waker::new(poll.registry(), mio::Token(7)).unwrap());
    let out = Output::start_with(
        Box::new(gated.clone()),
        LogFormat::Text,
        false,
        false,
        Some(waker),
    );
    out.set_apps(&[("web".into(), 1)]);
    line(&out, "web", 0, "first");
    // The writer takes the first line and blocks writing it.
    wait_until("writer blocked", || gated.writes.load(Ordering::SeqCst) > 0);
    let chunk = vec![b'y'; 1000];
    let mut accepted = 0;
    let refused = loop {
        match out.try_line("web", 0, Stream::Stdout, chunk.clone(), false) {
            Ok(()) => accepted += 1,
            Err(back) => break back,
        }
        assert!(accepted < 10_000, "never refused");
    };
    assert_eq!(refused, chunk);
    assert!(accepted * 1000 >= QUEUE_BOUND / 2);
    assert!(accepted * 1000 <= QUEUE_BOUND + 1000);
    assert!(!out.has_room());
    // supervise's own lines are still accepted.
    out.event("web.0 exited with code 1");
    // No wake-up while stdout is stuck.
    let mut events = mio::Events::with_capacity(4);
    poll.poll(&mut events, Some(Duration::from_millis(100)))
        .unwrap();
    assert!(events.is_empty());
    // The reader comes back: room again, and the waker fires.
    gated.open();
    poll.poll(&mut events, Some(Duration::from_secs(10)))
        .unwrap();
    assert!(events.iter().any(|e| e.token() == mio::Token(7)));
    wait_until("room", || out.has_room());
    out.try_line("web", 0, Stream::Stdout, b"last".to_vec(), false)
        .unwrap();
    out.finish(Duration::from_secs(10));
    let text = gated.out.text();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), accepted + 3);
    assert_eq!(lines[0], "web.0     | first");
    assert_eq!(lines[accepted + 1], "supervise | web.0 exited with code 1");
    assert_eq!(lines[accepted + 2], "web.0     | last");
}

#[test]
fn finish_gives_up_on_a_stuck_stdout() {
    let gated = Gated::default();
    let out = Output::start_with(Box::new(gated.clone()), LogFormat::Text, false, false, None);
    line(&out, "web", 0, "stuck");
    wait_until("writer blocked", || gated.writes.load(Ordering::SeqCst) > 0);
    out.event("stopping");
    let t = Instant::now();
    out.finish(Duration::from_millis(200));
    let took = t.elapsed();
    assert!(took >= Duration::from_millis(190), "{took:?}");
    assert!(took < Duration::from_secs(2), "{took:?}");
    // Let the left-behind thread end.
    gated.open();
}

#[test]
fn broken_stdout_drops_lines_silently() {
    let calls = Arc::new(AtomicUsize::new(0));
    let out = Output::start_with(
        Box::new(Broken(calls.clone())),
        LogFormat::Text,
        false,
        false,
        None,
    );
    for i in 0..10_000 {
        // Never refused for long: the queue keeps draining.
        while out
            .try_line("web", 0, Stream::Stdout, format!("{i}").into_bytes(), false)
            .is_err()
        {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    out.event("still alive");
    let t = Instant::now();
    out.finish(Duration::from_secs(5));
    assert!(t.elapsed() < Duration::from_secs(2));
    // After the first failure, nothing more is attempted.
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[test]
fn drop_without_finish_still_writes() {
    let (out, buf) = text_output(false, false);
    line(&out, "web", 0, "bye");
    drop(out);
    wait_until("written after drop", || buf.text() == "web.0     | bye\n");
}

#[test]
fn stream_names() {
    assert_eq!(Stream::Stdout.as_str(), "stdout");
    assert_eq!(Stream::Stderr.as_str(), "stderr");
    assert_eq!(digits(0), 1);
    assert_eq!(digits(9), 1);
    assert_eq!(digits(10), 2);
    assert_eq!(digits(u32::MAX), 10);
}

/// A writer that records the size of each write.
#[derive(Clone, Default)]
struct Sizes(Shared, Arc<Mutex<Vec<usize>>>);

impl Write for Sizes {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.1.lock().unwrap().push(buf.len());
        self.0.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_big_chunk_goes_out_whole_in_bounded_writes() {
    // Line ends recorded, or not (a big read of plain lines): the same bytes come out.
    for plain in [false, true] {
        let sizes = Sizes::default();
        let out = Output::start_with(Box::new(sizes.clone()), LogFormat::Text, false, false, None);
        out.set_apps(&[("web".into(), 1)]);
        let mut chunk = Chunk::new("web".into(), 0, Stream::Stdout, SystemTime::now());
        let (mut data, mut want) = (Vec::new(), Vec::new());
        for i in 0..20_000 {
            let line = format!("{i:010} {}", "x".repeat(88));
            data.extend_from_slice(format!("{line}\n").as_bytes());
            want.extend_from_slice(format!("web.0     | {line}\n").as_bytes());
        }
        if plain {
            let len = data.len();
            chunk = chunk.of_plain(data, len);
        } else {
            assert_eq!(chunk.push_plain(&data), data.len());
        }
        assert!(want.len() > 4 * WRITE_AT);
        out.try_chunk(Arc::new(chunk)).unwrap();
        out.finish(Duration::from_secs(10));
        assert!(*sizes.0 .0.lock().unwrap() == want, "lines whole, in order");
        let sizes = sizes.1.lock().unwrap();
        assert!(sizes.len() > 4, "written in pieces: {sizes:?}");
        assert!(sizes.iter().all(|&n| n < WRITE_AT + 200), "{sizes:?}");
    }
}

#[test]
fn plain_lines_in_json_are_objects_like_any() {
    let text = |plain: bool| {
        let buf = Shared::default();
        let out = Output::start_with(Box::new(buf.clone()), LogFormat::Json, false, false, None);
        let data = b"one\n\n{\"q\": \"\\\"\"}\n".to_vec();
        let mut chunk = Chunk::new("web".into(), 0, Stream::Stderr, SystemTime::UNIX_EPOCH);
        if plain {
            let len = data.len();
            chunk = chunk.of_plain(data, len);
        } else {
            chunk.push_plain(&data);
        }
        out.try_chunk(Arc::new(chunk)).unwrap();
        out.finish(Duration::from_secs(10));
        buf.text()
    };
    let recorded = text(false);
    assert_eq!(recorded.lines().count(), 3);
    assert!(recorded.contains(r#""stream":"stderr","line":"{\"q\": \"\\\"\"}"}"#));
    assert_eq!(text(true), recorded);
}
