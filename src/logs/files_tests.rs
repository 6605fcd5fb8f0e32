//! Tests of `files.rs` (kept apart to keep that file short).

use super::*;
use std::time::Instant;

fn settings(dir: &Path) -> FileSettings {
    FileSettings {
        dir: dir.to_path_buf(),
        max_size: 10 << 20,
        keep: 5,
        merge: false,
        timestamps: false,
    }
}

fn line(files: &LogFiles, app: &str, i: u32, stream: Stream, s: &str) {
    assert!(files.try_line(app, i, stream, s.as_bytes(), false));
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_default()
}

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(t.elapsed() < Duration::from_secs(10), "timed out: {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Names in `dir`, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    v.sort();
    v
}

#[test]
fn out_and_err_files() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("logs/deeper");
    let files = LogFiles::start(settings(&dir), None).unwrap();
    line(&files, "web", 0, Stream::Stdout, "hello");
    line(&files, "web", 0, Stream::Stderr, "oops");
    line(&files, "web", 1, Stream::Stdout, "one");
    line(&files, "web", 0, Stream::Stdout, "again");
    files.finish(Duration::from_secs(5));
    assert_eq!(
        names(&dir),
        ["web.0.err.log", "web.0.out.log", "web.1.out.log"]
    );
    assert_eq!(read(&dir.join("web.0.out.log")), "hello\nagain\n");
    assert_eq!(read(&dir.join("web.0.err.log")), "oops\n");
    assert_eq!(read(&dir.join("web.1.out.log")), "one\n");
    assert_eq!(file_name("web", 3, Stream::Stderr, false), "web.3.err.log");
    assert_eq!(file_name("web", 3, Stream::Stderr, true), "web.3.log");
}

#[test]
fn files_are_0640_and_appended_to() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    fs::write(tmp.path().join("web.0.out.log"), "before\n").unwrap();
    let files = LogFiles::start(settings(tmp.path()), None).unwrap();
    line(&files, "web", 0, Stream::Stdout, "after");
    line(&files, "web", 1, Stream::Stdout, "fresh");
    files.finish(Duration::from_secs(5));
    assert_eq!(read(&tmp.path().join("web.0.out.log")), "before\nafter\n");
    // 0640 less the umask: nothing for others, no group write.
    let mode = fs::metadata(tmp.path().join("web.1.out.log"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o7137, 0, "{mode:o}");
    assert_eq!(mode & 0o600, 0o600, "{mode:o}");
}

#[test]
fn merged_file_interleaves_streams() {
    let tmp = tempfile::tempdir().unwrap();
    let mut s = settings(tmp.path());
    s.merge = true;
    let files = LogFiles::start(s, None).unwrap();
    line(&files, "api", 2, Stream::Stdout, "a");
    line(&files, "api", 2, Stream::Stderr, "b");
    line(&files, "api", 2, Stream::Stdout, "c");
    files.finish(Duration::from_secs(5));
    assert_eq!(names(tmp.path()), ["api.2.log"]);
    assert_eq!(read(&tmp.path().join("api.2.log")), "a\nb\nc\n");
}

#[test]
fn timestamps_cut_and_raw_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let mut s = settings(tmp.path());
    s.timestamps = true;
    let files = LogFiles::start(s, None).unwrap();
    assert!(files.try_line("web", 0, Stream::Stdout, b"piece", true));
    assert!(files.try_line("web", 0, Stream::Stdout, b"\xffend", false));
    assert!(files.try_line("web", 0, Stream::Stdout, b"", false));
    files.finish(Duration::from_secs(5));
    let bytes = fs::read(tmp.path().join("web.0.out.log")).unwrap();
    let lines: Vec<&[u8]> = bytes.split(|&b| b == b'\n').collect();
    assert_eq!(lines.len(), 4);
    assert!(lines[3].is_empty());
    let ts = |l: &[u8]| {
        let t = std::str::from_utf8(&l[..TIMESTAMP_LEN]).unwrap().to_owned();
        assert!(t.ends_with("Z "), "{t}");
        humantime::parse_rfc3339(t.trim_end()).unwrap();
        l[TIMESTAMP_LEN..].to_vec()
    };
    assert_eq!(ts(lines[0]), format!("piece{CUT_MARK}").into_bytes());
    assert_eq!(ts(lines[1]), b"\xffend");
    assert_eq!(ts(lines[2]), b"");
}

#[test]
fn start_fails_clearly() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("plain");
    fs::write(&file, "").unwrap();
    let err = LogFiles::start(settings(&file.join("logs")), None)
        .err()
        .unwrap();
    let msg = err.to_string();
    assert!(
        msg.starts_with("log_dir ") && msg.contains("plain/logs"),
        "{msg}"
    );
    let err = LogFiles::start(settings(Path::new("relative")), None)
        .err()
        .unwrap();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
}

/// Reads `X.log.keep` ... `X.log.1`, `X.log` in order.
fn read_rotated(dir: &Path, name: &str, keep: u32) -> String {
    let mut all = String::new();
    for i in (1..=keep).rev() {
        all += &read(&dir.join(format!("{name}.{i}")));
    }
    all + &read(&dir.join(name))
}

#[test]
fn rotation_keeps_old_files_and_every_line() {
    let tmp = tempfile::tempdir().unwrap();
    let mut s = settings(tmp.path());
    s.max_size = 100_000;
    s.keep = 3;
    let files = LogFiles::start(s, None).unwrap();
    // About 490 kB: rotated 4 times, the oldest file dropped.
    let n = 10_000;
    for i in 0..n {
        let text = format!("{i:08} {}", "x".repeat(i % 80));
        while !files.try_line("web", 0, Stream::Stdout, text.as_bytes(), false) {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    files.finish(Duration::from_secs(10));
    assert_eq!(
        names(tmp.path()),
        [
            "web.0.out.log",
            "web.0.out.log.1",
            "web.0.out.log.2",
            "web.0.out.log.3"
        ]
    );
    let all = read_rotated(tmp.path(), "web.0.out.log", 3);
    for name in names(tmp.path()) {
        let len = fs::metadata(tmp.path().join(&name)).unwrap().len();
        assert!(len <= 100_000, "{name}: {len}");
        if name != "web.0.out.log" {
            assert!(len > 100_000 - 90, "{name}: {len}");
        }
        assert!(read(&tmp.path().join(&name)).ends_with('\n'));
    }
    // The kept lines are the last ones, all of them, in order.
    let numbers: Vec<usize> = all
        .lines()
        .map(|l| l.split(' ').next().unwrap().parse().unwrap())
        .collect();
    let first = numbers[0];
    assert!(first > 0, "old files were dropped");
    assert_eq!(numbers, (first..n).collect::<Vec<_>>());
}

#[test]
fn rotation_with_many_files_loses_nothing() {
    // Keep enough files to hold all 10_000 lines (90 kB), rotating every 111 lines.
    let tmp = tempfile::tempdir().unwrap();
    let mut s = settings(tmp.path());
    s.max_size = 1000;
    s.keep = 200;
    s.merge = true;
    let files = LogFiles::start(s, None).unwrap();
    let n = 10_000;
    for i in 0..n {
        let stream = if i % 3 == 0 {
            Stream::Stderr
        } else {
            Stream::Stdout
        };
        let text = format!("{i:08}");
        while !files.try_line("job", 7, stream, text.as_bytes(), false) {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    files.finish(Duration::from_secs(10));
    assert_eq!(names(tmp.path()).len(), 91);
    let all = read_rotated(tmp.path(), "job.7.log", 200);
    let numbers: Vec<usize> = all.lines().map(|l| l.parse().unwrap()).collect();
    assert_eq!(numbers, (0..n).collect::<Vec<_>>());
    for i in 1..=90 {
        let len = fs::metadata(tmp.path().join(format!("job.7.log.{i}")))
            .unwrap()
            .len();
        assert_eq!(len, 999, "job.7.log.{i}");
    }
}

#[test]
fn keep_zero_starts_over_and_a_huge_line_is_whole() {
    let tmp = tempfile::tempdir().unwrap();
    let mut s = settings(tmp.path());
    s.max_size = 10;
    s.keep = 0;
    let files = LogFiles::start(s, None).unwrap();
    line(&files, "web", 0, Stream::Stdout, "1234");
    line(&files, "web", 0, Stream::Stdout, "5678");
    line(&files, "web", 0, Stream::Stdout, "this is longer than ten");
    line(&files, "web", 0, Stream::Stdout, "end");
    files.finish(Duration::from_secs(5));
    assert_eq!(names(tmp.path()), ["web.0.out.log"]);
    assert_eq!(read(&tmp.path().join("web.0.out.log")), "end\n");
}

#[test]
fn smaller_keep_on_reload_removes_the_extra_files() {
    let tmp = tempfile::tempdir().unwrap();
    let mut s = settings(tmp.path());
    s.max_size = 4;
    s.keep = 4;
    let files = LogFiles::start(s.clone(), None).unwrap();
    for i in 0..10 {
        line(&files, "web", 0, Stream::Stdout, &i.to_string());
    }
    let p = tmp.path().join("web.0.out.log.4");
    wait_until("four old files", || p.exists());
    s.keep = 1;
    files.set(s);
    line(&files, "web", 0, Stream::Stdout, "a");
    line(&files, "web", 0, Stream::Stdout, "b");
    files.finish(Duration::from_secs(5));
    assert_eq!(names(tmp.path()), ["web.0.out.log", "web.0.out.log.1"]);
    assert_eq!(read(&tmp.path().join("web.0.out.log.1")), "8\n9\n");
    assert_eq!(read(&tmp.path().join("web.0.out.log")), "a\nb\n");
}

#[test]
fn reopen_after_logrotate_moved_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let files = LogFiles::start(settings(tmp.path()), None).unwrap();
    let path = tmp.path().join("web.0.out.log");
    line(&files, "web", 0, Stream::Stdout, "old 1");
    line(&files, "web", 0, Stream::Stdout, "old 2");
    wait_until("written", || read(&path) == "old 1\nold 2\n");
    let moved = tmp.path().join("web.0.out.log.moved");
    fs::rename(&path, &moved).unwrap();
    // Until reopened, lines follow the moved file.
    line(&files, "web", 0, Stream::Stdout, "old 3");
    wait_until("still the old file", || read(&moved).ends_with("old 3\n"));
    files.reopen();
    line(&files, "web", 0, Stream::Stdout, "new 1");
    files.finish(Duration::from_secs(5));
    assert_eq!(read(&moved), "old 1\nold 2\nold 3\n");
    assert_eq!(read(&path), "new 1\n");
}

#[test]
fn set_moves_to_a_new_dir_and_mode() {
    let tmp = tempfile::tempdir().unwrap();
    let files = LogFiles::start(settings(tmp.path()), None).unwrap();
    line(&files, "web", 0, Stream::Stdout, "first");
    let first = tmp.path().join("web.0.out.log");
    wait_until("written", || read(&first) == "first\n");
    let other = tmp.path().join("other");
    let mut s = settings(&other);
    s.merge = true;
    files.set(s);
    line(&files, "web", 0, Stream::Stderr, "second");
    files.finish(Duration::from_secs(5));
    assert_eq!(read(&first), "first\n");
    assert_eq!(read(&other.join("web.0.log")), "second\n");
}

#[test]
fn many_instances_beyond_the_open_cap() {
    let tmp = tempfile::tempdir().unwrap();
    let files = LogFiles::start_with(settings(tmp.path()), None, QUEUE_BOUND, 4).unwrap();
    for round in 0..5 {
        for i in 0..20 {
            line(&files, "app", i, Stream::Stdout, &format!("{round}"));
        }
    }
    files.finish(Duration::from_secs(5));
    assert_eq!(names(tmp.path()).len(), 20);
    for i in 0..20 {
        let text = read(&tmp.path().join(format!("app.{i}.out.log")));
        assert_eq!(text, "0\n1\n2\n3\n4\n");
    }
}

#[test]
fn finish_writes_everything_promptly() {
    let tmp = tempfile::tempdir().unwrap();
    let files = LogFiles::start(settings(tmp.path()), None).unwrap();
    for i in 0..1000 {
        line(&files, "web", 0, Stream::Stdout, &i.to_string());
    }
    let t = Instant::now();
    files.finish(Duration::from_secs(5));
    assert!(t.elapsed() < Duration::from_secs(2));
    assert_eq!(
        read(&tmp.path().join("web.0.out.log")).lines().count(),
        1000
    );
}

/// Makes `web.0.out.log` a link to /dev/full: every write fails with ENOSPC.
fn disk_full(dir: &Path) -> PathBuf {
    let path = dir.join("web.0.out.log");
    std::os::unix::fs::symlink("/dev/full", &path).unwrap();
    path
}

#[test]
fn disk_full_keeps_lines_refuses_then_wakes() {
    let tmp = tempfile::tempdir().unwrap();
    let path = disk_full(tmp.path());
    let mut poll = mio::Poll::new().unwrap();
    let waker = Arc::new(mio::Waker::new(poll.registry(), mio::Token(3)).unwrap());
    let bound = 10_000;
    let files = LogFiles::start_with(settings(tmp.path()), Some(waker), bound, MAX_OPEN).unwrap();
    // The writer takes the first line and holds it.
    line(&files, "web", 0, Stream::Stdout, "000000");
    wait_until("taken", || files.writer.queued_bytes() == 0);
    let mut n = 1;
    while files.try_line(
        "web",
        0,
        Stream::Stdout,
        format!("{n:06}").as_bytes(),
        false,
    ) {
        n += 1;
        assert!(n < 100_000, "never refused");
    }
    assert!(n * 71 >= bound && n * 71 <= bound + 142, "{n}");
    assert!(!files.has_room());
    // No wake-up while the disk is full.
    let mut events = mio::Events::with_capacity(4);
    poll.poll(&mut events, Some(Duration::from_millis(300)))
        .unwrap();
    assert!(events.is_empty());
    // Room on the disk again (logrotate-style: a new file, then SIGUSR1).
    fs::remove_file(&path).unwrap();
    files.reopen();
    poll.poll(&mut events, Some(Duration::from_secs(10)))
        .unwrap();
    assert!(events.iter().any(|e| e.token() == mio::Token(3)));
    wait_until("room", || files.has_room());
    line(&files, "web", 0, Stream::Stdout, "last");
    files.finish(Duration::from_secs(10));
    let text = read(&path);
    let mut expected: Vec<String> = (0..n).map(|i| format!("{i:06}")).collect();
    expected.push("last".into());
    assert_eq!(text.lines().collect::<Vec<_>>(), expected);
}

#[test]
fn disk_full_retries_on_its_own() {
    let tmp = tempfile::tempdir().unwrap();
    let path = disk_full(tmp.path());
    let files = LogFiles::start(settings(tmp.path()), None).unwrap();
    line(&files, "web", 0, Stream::Stdout, "kept");
    line(&files, "web", 0, Stream::Stdout, "too");
    std::thread::sleep(Duration::from_millis(150));
    // The disk has room again: the writer gets there alone, without reopen.
    fs::remove_file(&path).unwrap();
    wait_until("retried", || read(&path) == "kept\ntoo\n");
    line(&files, "web", 0, Stream::Stdout, "more");
    files.finish(Duration::from_secs(5));
    assert_eq!(read(&path), "kept\ntoo\nmore\n");
}

#[test]
fn a_big_read_of_plain_lines_resumes_where_the_full_disk_stopped_it() {
    let tmp = tempfile::tempdir().unwrap();
    let path = disk_full(tmp.path());
    let files = LogFiles::start(settings(tmp.path()), None).unwrap();
    // Several WRITE_AT pieces, its line ends not recorded (as a big pipe read gives it).
    let text: String = (0..3000)
        .map(|i| format!("{i:06} {}\n", "x".repeat(90)))
        .collect();
    let chunk = Chunk::new("web".into(), 0, Stream::Stdout, SystemTime::now())
        .of_plain(text.clone().into_bytes(), text.len());
    assert!(files.try_chunk(Arc::new(chunk)));
    // Taken, formatted up to the first write, which fails.
    wait_until("taken", || files.writer.queued_bytes() == 0);
    fs::remove_file(&path).unwrap();
    wait_until("retried", || read(&path).len() == text.len());
    files.finish(Duration::from_secs(5));
    assert!(read(&path) == text);
}

#[test]
fn a_new_dir_on_reload_ends_the_failure() {
    let tmp = tempfile::tempdir().unwrap();
    disk_full(tmp.path());
    let files = LogFiles::start(settings(tmp.path()), None).unwrap();
    line(&files, "web", 0, Stream::Stdout, "kept");
    std::thread::sleep(Duration::from_millis(150));
    let other = tmp.path().join("other");
    files.set(settings(&other));
    files.finish(Duration::from_secs(5));
    assert_eq!(read(&other.join("web.0.out.log")), "kept\n");
}

#[test]
fn finish_gives_up_on_a_full_disk() {
    let tmp = tempfile::tempdir().unwrap();
    disk_full(tmp.path());
    let files = LogFiles::start(settings(tmp.path()), None).unwrap();
    line(&files, "web", 0, Stream::Stdout, "lost");
    let t = Instant::now();
    files.finish(Duration::from_millis(200));
    let took = t.elapsed();
    assert!(took >= Duration::from_millis(190), "{took:?}");
    assert!(took < Duration::from_secs(2), "{took:?}");
}
