//! The process's logs: text or JSON lines on stderr, written by a background thread.

use std::io::{IsTerminal, Write};
use std::os::fd::AsFd;
use std::time::Duration;

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Logs go to stderr through a background writer (a request never waits for the
/// terminal or a pipe), in colour only when stderr is a terminal, as text or JSON
/// lines; `RUST_LOG` overrides the level chosen by `--debug`. `init` also bridges the
/// `log` facade, which whatsapp-rust logs through.
pub fn init(debug: bool, format: LogFormat) -> tracing_appender::non_blocking::WorkerGuard {
    let default = if debug {
        "debug,hyper=info,h2=info,diesel=info"
    } else {
        "info,whatsapp_rust=warn,wacore=warn"
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    // Not lossy: under a flood of lines, logging slows down rather than drops some.
    // The queue's slots are allocated and touched up front (32 bytes a line): the
    // library's default of 128,000 lines held 4 MB of RSS from startup. 8,192 lines
    // are 35 ms of lines at 230,000 a second, far more than the writer's pause.
    let lines = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .buffered_lines_limit(8192);
    // A duplicate of stderr's descriptor shares its position and mode (a file opened
    // for appending stays so).
    let (writer, guard) = match std::io::stderr().as_fd().try_clone_to_owned() {
        Ok(fd) => lines.finish(Batched::new(std::fs::File::from(fd))),
        Err(_) => lines.finish(Batched::new(std::io::stderr())),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    match format {
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => builder.json().with_ansi(false).init(),
    }
    guard
}

/// The log writer thread's output, buffered. The thread flushes whenever its queue
/// runs empty; after each flush it pauses a moment, so that under load lines go out
/// in batches (one write, and no wake-up of the thread, per line) while a line waits
/// at most that moment.
struct Batched<W: Write> {
    out: std::io::BufWriter<W>,
}

impl<W: Write> Batched<W> {
    const PAUSE: Duration = Duration::from_millis(2);

    fn new(out: W) -> Self {
        Self {
            out: std::io::BufWriter::with_capacity(64 * 1024, out),
        }
    }
}

impl<W: Write> Write for Batched<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.out.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()?;
        std::thread::sleep(Self::PAUSE);
        Ok(())
    }
}
