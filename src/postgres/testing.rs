//! A PostgreSQL server of its own for a test: Debian's `postgresql` binaries
//! (`.ci/run` installs them), a cluster in a temporary folder reached through a
//! Unix socket only (no port to collide on), stopped and deleted when the guard
//! drops. As root (CI), the server runs as the `postgres` user, as Postgres
//! refuses root.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The running server; stopping it and deleting its folder on drop.
pub struct TestServer {
    dir: tempfile::TempDir,
    bin: PathBuf,
    as_postgres: bool,
    /// The server's settings (`pg_ctl -o`).
    options: String,
}

impl TestServer {
    /// Starts a fresh cluster (fsync off: its data is thrown away).
    pub fn start() -> TestServer {
        Self::launch(false)
    }

    /// Starts a fresh cluster that writes as a production one does (fsync and
    /// synchronous commits on), for benchmarks.
    pub fn start_durable() -> TestServer {
        Self::launch(true)
    }

    fn launch(durable: bool) -> TestServer {
        let bin = binaries();
        let dir = tempfile::Builder::new()
            .prefix("wa-pg-")
            .tempdir()
            .expect("a temporary folder for Postgres");
        let as_postgres = nix::unistd::geteuid().is_root();
        if as_postgres {
            let user = nix::unistd::User::from_name("postgres")
                .ok()
                .flatten()
                .expect("the postgres user (Debian's postgresql package makes it)");
            nix::unistd::chown(dir.path(), Some(user.uid), Some(user.gid))
                .expect("the folder given to the postgres user");
        }
        let speed = match durable {
            true => "",
            false => "-c fsync=off -c synchronous_commit=off -c full_page_writes=off",
        };
        let options = format!(
            "-c listen_addresses='' -k {} {speed} -c max_connections=200",
            dir.path().display()
        );
        let server = TestServer {
            dir,
            bin,
            as_postgres,
            options,
        };
        let data = server.data().display().to_string();
        server.run(
            "initdb",
            &["-D", &data, "-U", "postgres", "--auth=trust", "--no-sync"],
        );
        let log = server.dir.path().join("server.log").display().to_string();
        server.run(
            "pg_ctl",
            &[
                "-D",
                &data,
                "-o",
                &server.options,
                "-l",
                &log,
                "-w",
                "start",
            ],
        );
        server
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// `tokio-postgres` settings for the database `name`.
    pub fn uri(&self, name: &str) -> String {
        format!(
            "host={} user=postgres dbname={name}",
            self.dir.path().display()
        )
    }

    /// Restarts the server (fast shutdown: every connection is cut), as an
    /// operator's restart or a failover does.
    pub fn restart(&self) {
        let data = self.data().display().to_string();
        // Its output to the log, not to pipes it would hold open for good.
        let log = self.dir.path().join("server.log").display().to_string();
        self.run(
            "pg_ctl",
            &["-D", &data, "-l", &log, "-m", "fast", "-w", "restart"],
        );
    }

    /// Stops the server (fast shutdown: every connection is cut) until
    /// [`start_again`](Self::start_again).
    pub fn stop(&self) {
        let data = self.data().display().to_string();
        self.run("pg_ctl", &["-D", &data, "-m", "fast", "-w", "stop"]);
    }

    /// Starts the stopped server again, as it ran.
    pub fn start_again(&self) {
        let data = self.data().display().to_string();
        let log = self.dir.path().join("server.log").display().to_string();
        self.run(
            "pg_ctl",
            &["-D", &data, "-o", &self.options, "-l", &log, "-w", "start"],
        );
    }

    /// A `postgres://` URL of the database `name` (as `--db-uri` takes it).
    pub fn url(&self, name: &str) -> String {
        format!(
            "postgres://postgres@localhost/{name}?host={}",
            self.dir.path().display()
        )
    }

    /// Makes the database `name`.
    pub fn create_database(&self, name: &str) {
        let socket = self.dir.path().display().to_string();
        self.run("createdb", &["-h", &socket, "-U", "postgres", name]);
    }

    fn command(&self, tool: &str) -> Command {
        let program = self.bin.join(tool);
        if self.as_postgres {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(program);
            command
        } else {
            Command::new(program)
        }
    }

    fn run(&self, tool: &str, args: &[&str]) {
        let out = self
            .command(tool)
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {tool}: {e}"));
        assert!(
            out.status.success(),
            "{tool} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let data = self.data().display().to_string();
        let _ = self
            .command("pg_ctl")
            .args(["-D", &data, "-m", "immediate", "stop"])
            .output();
    }
}

/// Where Debian keeps the newest installed PostgreSQL's programs.
fn binaries() -> PathBuf {
    let root = Path::new("/usr/lib/postgresql");
    let mut versions: Vec<PathBuf> = std::fs::read_dir(root)
        .map(|entries| entries.flatten().map(|e| e.path().join("bin")).collect())
        .unwrap_or_default();
    versions.retain(|bin| bin.join("initdb").exists());
    versions.sort();
    versions.pop().unwrap_or_else(|| {
        panic!(
            "PostgreSQL is not installed ({} has no initdb): install Debian's postgresql \
             package (.ci/run does)",
            root.display()
        )
    })
}

/// A server started (off the async threads) with one fresh database `name`.
pub async fn with_database(name: &'static str) -> std::sync::Arc<TestServer> {
    tokio::task::spawn_blocking(move || {
        let server = TestServer::start();
        server.create_database(name);
        std::sync::Arc::new(server)
    })
    .await
    .expect("the Postgres server started")
}

/// A server with one fresh database, and a migrated pool on it.
pub async fn database() -> (std::sync::Arc<TestServer>, deadpool_postgres::Pool) {
    let server = with_database("wa").await;
    let pool = super::connect(&server.uri("wa"))
        .await
        .expect("a migrated pool on the test database");
    (server, pool)
}
