//! A log writer that batches: callers append to a shared buffer, and one
//! background thread writes what has gathered in a single call.
//!
//! A writer that hands each line to its thread over a channel wakes that
//! thread, and writes, once per line: under load that was a `write(2)`, a
//! futex wake and a few `sched_yield`s per request. Here only the first line
//! after a write wakes the thread; it then waits [`LogWriter::BATCH`] so the
//! lines of that interval go out together. Lines are never dropped: past
//! [`LogWriter::MAX_PENDING`] unwritten bytes, callers wait for the thread.

use std::io::Write;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

struct State {
    pending: Vec<u8>,
    closed: bool,
}

struct Shared {
    state: Mutex<State>,
    /// Signalled when `pending` stops being empty, and at close.
    filled: Condvar,
    /// Signalled when the thread took `pending`.
    drained: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A cloneable handle that appends whole writes to the shared buffer. It
/// implements [`Write`]; for `tracing-subscriber`, pass
/// `move || writer.clone()` as the `MakeWriter`.
#[derive(Clone)]
pub struct LogWriter {
    shared: Arc<Shared>,
}

/// Owns the writing thread; dropping it writes what is pending and joins
/// the thread.
pub struct LogWriterGuard {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl LogWriter {
    /// How long the thread gathers lines after the first one arrives.
    pub const BATCH: Duration = Duration::from_millis(10);
    /// Unwritten bytes past which callers wait for the thread.
    pub const MAX_PENDING: usize = 8 * 1024 * 1024;

    /// Starts the thread (named `name`) that writes to `out`.
    pub fn spawn(
        name: &str,
        out: impl Write + Send + 'static,
    ) -> std::io::Result<(LogWriter, LogWriterGuard)> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                pending: Vec::with_capacity(64 * 1024),
                closed: false,
            }),
            filled: Condvar::new(),
            drained: Condvar::new(),
        });
        let thread = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name(name.to_owned())
                .spawn(move || run(&shared, out))?
        };
        Ok((
            LogWriter {
                shared: Arc::clone(&shared),
            },
            LogWriterGuard {
                shared,
                thread: Some(thread),
            },
        ))
    }

    /// Appends `bytes` (one or more whole lines).
    pub fn append(&self, bytes: &[u8]) {
        let mut state = self.shared.lock();
        while state.pending.len() >= Self::MAX_PENDING && !state.closed {
            state = self
                .shared
                .drained
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
        let was_empty = state.pending.is_empty();
        state.pending.extend_from_slice(bytes);
        drop(state);
        if was_empty {
            self.shared.filled.notify_one();
        }
    }
}

fn run(shared: &Shared, mut out: impl Write) {
    let mut writing = Vec::with_capacity(64 * 1024);
    loop {
        let mut state = shared.lock();
        while state.pending.is_empty() && !state.closed {
            state = shared
                .filled
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
        if !state.closed {
            // Let the lines of the next few milliseconds join this write.
            drop(state);
            std::thread::sleep(LogWriter::BATCH);
            state = shared.lock();
        }
        std::mem::swap(&mut state.pending, &mut writing);
        let closed = state.closed;
        drop(state);
        shared.drained.notify_all();
        // A failed write to stderr has nowhere to be reported.
        let _ = out.write_all(&writing).and_then(|()| out.flush());
        writing.clear();
        if writing.capacity() > 1024 * 1024 {
            writing.shrink_to(64 * 1024);
        }
        if closed && shared.lock().pending.is_empty() {
            return;
        }
    }
}

impl Write for LogWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.append(bytes);
        Ok(bytes.len())
    }

    fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.append(bytes);
        Ok(())
    }

    /// Formats the whole text first, so a `writeln!` from one thread is
    /// never split by another's write.
    fn write_fmt(&mut self, args: std::fmt::Arguments<'_>) -> std::io::Result<()> {
        match args.as_str() {
            Some(text) => self.append(text.as_bytes()),
            None => self.append(std::fmt::format(args).as_bytes()),
        }
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LogWriterGuard {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.filled.notify_one();
        self.shared.drained.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl std::fmt::Debug for LogWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogWriter").finish_non_exhaustive()
    }
}

impl std::fmt::Debug for LogWriterGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogWriterGuard").finish_non_exhaustive()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests: a panic is the failure report.
mod tests {
    use super::*;

    /// Records each `write` call separately.
    #[derive(Clone, Default)]
    struct Recorder(Arc<Mutex<Vec<Vec<u8>>>>);

    impl Write for Recorder {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().push(bytes.to_vec());
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn lines_from_many_threads_arrive_whole_in_few_writes_and_all_by_drop() {
        let recorder = Recorder::default();
        let (writer, guard) = LogWriter::spawn("test-log", recorder.clone()).unwrap();
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let mut writer = writer.clone();
                std::thread::spawn(move || {
                    for i in 0..2_000 {
                        writeln!(writer, "thread {t} line {i}").unwrap();
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        drop(guard);
        let writes = recorder.0.lock().unwrap().clone();
        let text = String::from_utf8(writes.concat()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 8_000);
        for t in 0..4 {
            let own: Vec<&str> = lines
                .iter()
                .copied()
                .filter(|line| line.starts_with(&format!("thread {t} ")))
                .collect();
            let expected: Vec<String> =
                (0..2_000).map(|i| format!("thread {t} line {i}")).collect();
            assert!(
                own == expected,
                "thread {t}'s lines are not whole and in order"
            );
        }
        assert!(
            writes.len() < 8_000 / 4,
            "{} writes for 8,000 lines: not batched",
            writes.len()
        );
    }

    #[test]
    fn a_lone_line_is_written_without_more_input() {
        let recorder = Recorder::default();
        let (mut writer, _guard) = LogWriter::spawn("test-log", recorder.clone()).unwrap();
        writer.write_all(b"only line\n").unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while recorder.0.lock().unwrap().is_empty() {
            assert!(std::time::Instant::now() < deadline, "never written");
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(recorder.0.lock().unwrap().concat(), b"only line\n");
    }
}
