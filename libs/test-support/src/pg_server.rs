//! A private PostgreSQL server per test, for tests that stop or kill it.
//!
//! [`TestDb`](crate::TestDb) shares the machine's server between tests, which
//! is right for nearly all of them, but a test of an outage must not take
//! everyone else's database down with it. [`PostgresServer`] initdb's a
//! throw-away cluster in a temporary directory (trust auth, superuser
//! `postgres`, TCP on a free loopback port, no socket file), and can stop,
//! kill -9 and start it again, with its data kept, as an operator or a crash
//! would. The server binaries come from `PG_BIN` if set, else `pg_config
//! --bindir`, else the newest `/usr/lib/postgresql/*/bin`; without them the
//! test fails saying how to install them. As root, the cluster is owned by
//! and run as the `postgres` system user (initdb refuses root).

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sqlx::{Connection, PgConnection};

/// How long a start may take before the test fails.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A PostgreSQL server of the test's own; stopped and deleted on drop.
pub struct PostgresServer {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    as_postgres: bool,
}

impl PostgresServer {
    /// Creates a new cluster and starts it.
    ///
    /// # Panics
    /// If the server binaries are missing or the cluster cannot start.
    pub async fn start() -> PostgresServer {
        let bin = server_bin_dir();
        let as_postgres = std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
        let dir = tempfile::Builder::new()
            .prefix("stocklet-pg-")
            .tempdir()
            .unwrap_or_else(|e| panic!("cannot create a temporary directory: {e}"));
        if as_postgres {
            let status = Command::new("chown")
                .args(["-R", "postgres:"])
                .arg(dir.path())
                .status();
            assert!(
                status.is_ok_and(|s| s.success()),
                "running as root, but cannot give {} to the `postgres` system user",
                dir.path().display()
            );
        }
        let port = crate::stable_port();
        let server = PostgresServer {
            dir,
            bin,
            port,
            as_postgres,
        };
        let data = server.data_dir();
        server.run(
            "initdb",
            &[
                "-D",
                path_str(&data),
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            ],
        );
        let conf = format!(
            "\nlisten_addresses = '127.0.0.1'\nport = {port}\nunix_socket_directories = ''\n\
             max_connections = 200\nfsync = off\n"
        );
        let appended = std::fs::OpenOptions::new()
            .append(true)
            .open(data.join("postgresql.conf"))
            .and_then(|mut file| std::io::Write::write_all(&mut file, conf.as_bytes()));
        if let Err(error) = appended {
            panic!("cannot configure the test cluster: {error}");
        }
        server.start_again().await;
        server
    }

    /// The URL of its `postgres` database.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Starts the server (again) and waits until it takes connections. A
    /// killed server's children may still hold its shared memory for a
    /// moment, so a refused start is retried.
    pub async fn start_again(&self) {
        let deadline = Instant::now() + START_TIMEOUT;
        let log = self.dir.path().join("postgres.log");
        loop {
            let started = self.try_run(
                "pg_ctl",
                &[
                    "-D",
                    path_str(&self.data_dir()),
                    "-l",
                    path_str(&log),
                    "-w",
                    "-t",
                    "30",
                    "start",
                ],
            );
            if started && self.accepts_connections().await {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the test PostgreSQL did not start; its log:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Stops the server as an operator would (`pg_ctl stop -m fast`): open
    /// connections are cut, new ones refused.
    pub fn stop(&self) {
        self.run(
            "pg_ctl",
            &["-D", path_str(&self.data_dir()), "-m", "fast", "-w", "stop"],
        );
    }

    /// Kills the server's main process with SIGKILL, as a crash would.
    pub fn kill(&self) {
        let pid = std::fs::read_to_string(self.data_dir().join("postmaster.pid"))
            .ok()
            .and_then(|pid_file| pid_file.lines().next()?.trim().parse::<u32>().ok())
            .unwrap_or_else(|| panic!("the test PostgreSQL is not running"));
        let killed = Command::new("kill").args(["-9", &pid.to_string()]).status();
        assert!(killed.is_ok_and(|s| s.success()), "kill -9 {pid} failed");
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    async fn accepts_connections(&self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(connection) = PgConnection::connect(&self.url()).await {
                let _ = connection.close().await;
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    }

    /// Runs a server program as the cluster's owner; panics if it fails.
    fn run(&self, program: &str, args: &[&str]) {
        assert!(
            self.try_run(program, args),
            "{program} {} failed",
            args.join(" ")
        );
    }

    fn try_run(&self, program: &str, args: &[&str]) -> bool {
        let program = self.bin.join(program);
        let mut command = if self.as_postgres {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(&program);
            command
        } else {
            Command::new(&program)
        };
        command
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        if self.data_dir().join("postmaster.pid").exists() {
            let _ = self.try_run(
                "pg_ctl",
                &[
                    "-D",
                    path_str(&self.data_dir()),
                    "-m",
                    "immediate",
                    "-w",
                    "stop",
                ],
            );
        }
    }
}

/// The directory of `initdb` and `pg_ctl`.
fn server_bin_dir() -> PathBuf {
    let has_tools = |dir: &Path| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file();
    if let Ok(dir) = std::env::var("PG_BIN") {
        return PathBuf::from(dir);
    }
    if let Ok(output) = Command::new("pg_config").arg("--bindir").output() {
        let dir = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
        if has_tools(&dir) {
            return dir;
        }
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|entry| entry.path().join("bin"))
                .filter(|dir| has_tools(dir))
                .collect()
        })
        .unwrap_or_default();
    versions.sort_by_key(|dir| {
        dir.parent()
            .and_then(Path::file_name)
            .and_then(|v| v.to_str()?.parse::<u32>().ok())
            .unwrap_or(0)
    });
    versions.pop().unwrap_or_else(|| {
        panic!(
            "PostgreSQL server binaries (initdb, pg_ctl) not found: install Debian's \
             postgresql package (apt-get install postgresql) or set PG_BIN to their directory"
        )
    })
}

fn path_str(path: &Path) -> &str {
    path.to_str()
        .unwrap_or_else(|| panic!("non-UTF-8 path {}", path.display()))
}
