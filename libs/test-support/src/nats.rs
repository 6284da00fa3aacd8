//! A private nats-server per test.

use std::fs::{self, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::workspace_root;

const DEFAULT_START_TIMEOUT: Duration = Duration::from_secs(30);
const STOP_TIMEOUT: Duration = Duration::from_secs(15);
const LOG_TAIL_LINES: usize = 60;
/// The users and permissions `nats/nats-server.conf` includes.
const PERMISSIONS_FILE: &str = "permissions.conf";

/// Extra settings for [`NatsServer::start_with`].
#[derive(Debug, Clone)]
pub struct NatsServerOptions {
    /// Extra command-line arguments, passed after the fixture's own (`-a`, `-p`, `-sd`,
    /// `-m`, `--ports_file_dir`), e.g. `["--cluster_name", "c1", "--cluster", "nats://127.0.0.1:-1"]`.
    pub args: Vec<String>,
    /// Config text appended to the server's copy of `nats/nats-server.conf`, e.g. a
    /// `cluster { ... }` block. A top-level key that the base file already has replaces
    /// the base value (a repeated block such as `jetstream { }` replaces the whole block).
    pub config: Option<String>,
    /// How long [`NatsServer::start_with`] and [`NatsServer::restart`] wait for the
    /// server to accept clients and answer JetStream requests (default 30 s).
    pub start_timeout: Duration,
}

impl Default for NatsServerOptions {
    fn default() -> Self {
        NatsServerOptions {
            args: Vec::new(),
            config: None,
            start_timeout: DEFAULT_START_TIMEOUT,
        }
    }
}

impl NatsServerOptions {
    /// Defaults: no extra arguments or config, 30 s start timeout.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one command-line argument.
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Adds command-line arguments.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Appends config text (see [`NatsServerOptions::config`]); may be called repeatedly.
    pub fn config(mut self, snippet: impl AsRef<str>) -> Self {
        let text = self.config.get_or_insert_with(String::new);
        text.push_str(snippet.as_ref());
        text.push('\n');
        self
    }

    /// Sets the start timeout.
    pub fn start_timeout(mut self, timeout: Duration) -> Self {
        self.start_timeout = timeout;
        self
    }
}

/// A nats-server child process with JetStream, private to one test.
///
/// It runs the project's `nats/nats-server.conf` (so tests see the production
/// settings, e.g. `sync_interval: always`) with the listen port, the JetStream store
/// (a temp dir) and the monitoring port overridden. The binary comes from
/// `NATS_SERVER_BIN`, else `<workspace>/.tools/bin/nats-server` (`make tools`).
///
/// Dropping it kills the process (SIGKILL) and deletes the store. If the thread is
/// panicking (a failed test), the end of the server log is printed to stderr first.
pub struct NatsServer {
    bin: PathBuf,
    args: Vec<String>,
    start_timeout: Duration,
    /// Known once the first start reported it; restarts reuse it.
    port: Option<u16>,
    /// Holds `nats-server.conf`, `jetstream/` (the store), `nats-server.log`, `ports/`.
    dir: TempDir,
    child: Option<Child>,
    paused: bool,
    violations_expected: bool,
}

impl NatsServer {
    /// Starts a server with the default options and waits until JetStream is ready.
    ///
    /// # Panics
    /// If the binary is missing, or the server does not become ready within the start
    /// timeout (the message includes the server log).
    pub async fn start() -> NatsServer {
        Self::start_with(NatsServerOptions::default()).await
    }

    /// Starts a server with extra arguments and/or config, and waits until JetStream is
    /// ready. Panics like [`NatsServer::start`].
    pub async fn start_with(options: NatsServerOptions) -> NatsServer {
        let bin = nats_server_bin();
        let base_config = workspace_root().join("nats").join("nats-server.conf");
        let base = fs::read_to_string(&base_config)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", base_config.display()));

        let dir = tempfile::Builder::new()
            .prefix("stocklet-nats-")
            .tempdir()
            .unwrap_or_else(|e| panic!("cannot create a temp dir for nats-server: {e}"));
        let config = test_config(&base, &base_config, options.config.as_deref());
        fs::write(dir.path().join("nats-server.conf"), config)
            .unwrap_or_else(|e| panic!("cannot write the nats-server config: {e}"));
        // The config includes the users and their permissions from beside it.
        let permissions = workspace_root().join("nats").join(PERMISSIONS_FILE);
        fs::copy(&permissions, dir.path().join(PERMISSIONS_FILE))
            .unwrap_or_else(|e| panic!("cannot copy {}: {e}", permissions.display()));
        fs::create_dir_all(dir.path().join("ports"))
            .unwrap_or_else(|e| panic!("cannot create the ports dir: {e}"));

        let mut server = NatsServer {
            bin,
            args: options.args,
            start_timeout: options.start_timeout,
            port: None,
            dir,
            child: None,
            paused: false,
            violations_expected: false,
        };
        server.spawn_and_wait().await;
        server
    }

    /// `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port())
    }

    /// The client port (stable across [`NatsServer::restart`]).
    pub fn port(&self) -> u16 {
        self.port
            .unwrap_or_else(|| panic!("nats-server port unknown: the server never started"))
    }

    /// The JetStream store directory (`-sd`).
    pub fn store_dir(&self) -> PathBuf {
        self.dir.path().join("jetstream")
    }

    /// Everything the server (and its earlier incarnations) logged so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// A new client connected to this server as the provisioner, which may
    /// do everything (async-nats defaults otherwise: it reconnects forever,
    /// so it survives [`NatsServer::restart`]).
    ///
    /// # Panics
    /// If connecting fails.
    pub async fn client(&self) -> async_nats::Client {
        crate::credentials::connect_as_provisioner(&[self.url()]).await
    }

    /// Creates every stream and the snapshot bucket, as `stocklet provision`
    /// does before the services start (they may only look streams up).
    ///
    /// # Panics
    /// If provisioning fails.
    pub async fn provision(&self) {
        let client = self.client().await;
        stocklet_service_kit::provision::provision(&client, 1)
            .await
            .unwrap_or_else(|e| panic!("cannot provision the streams on {}: {e}", self.url()));
    }

    /// Declares that this test provokes permission violations on purpose
    /// (it attacks with a confined user), so dropping the server does not
    /// fail the test for them.
    pub fn expect_permission_violations(&mut self) {
        self.violations_expected = true;
    }

    /// The permission violations the server logged so far: a subject some
    /// user was refused, one per line.
    pub fn permission_violations(&self) -> Vec<String> {
        self.log()
            .lines()
            .filter(|line| line.contains("Violation"))
            .map(str::to_owned)
            .collect()
    }

    /// A JetStream context on a new [`NatsServer::client`].
    pub async fn jetstream(&self) -> async_nats::jetstream::Context {
        async_nats::jetstream::new(self.client().await)
    }

    /// Whether the process is running (paused counts as running).
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Stops the server (if running) and starts it again on the same port and store
    /// dir, so persisted streams survive; waits until JetStream is ready. After
    /// [`NatsServer::kill`] this is a crash-restart, after [`NatsServer::stop`] a clean one.
    pub async fn restart(&mut self) {
        self.stop().await;
        self.spawn_and_wait().await;
    }

    /// Shuts the server down cleanly (SIGTERM, wait; SIGKILL after 15 s). No-op if it
    /// is not running.
    pub async fn stop(&mut self) {
        if self.child.is_none() {
            return;
        }
        if self.paused {
            self.resume();
        }
        let pid = self.pid();
        if self.is_running() {
            signal(pid, "TERM");
            let deadline = Instant::now() + STOP_TIMEOUT;
            while self.is_running() && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        self.kill();
    }

    /// Kills the server at once (SIGKILL) and reaps it, like a crash. No-op if it is
    /// not running. Start it again with [`NatsServer::restart`].
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.paused = false;
    }

    /// Freezes the server (SIGSTOP): connections stay open but nothing is answered,
    /// e.g. to make publishes time out.
    ///
    /// # Panics
    /// If the server is not running.
    pub fn pause(&mut self) {
        let pid = self.pid();
        signal(pid, "STOP");
        self.paused = true;
        // SIGSTOP is delivered to each of the server's threads as it next
        // enters the kernel; wait until all have stopped (state `T`), or a
        // busy thread could still answer a request sent right after this.
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline && !all_threads_stopped(pid) {
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Unfreezes a [`NatsServer::pause`]d server (SIGCONT).
    ///
    /// # Panics
    /// If the server is not running.
    pub fn resume(&mut self) {
        signal(self.pid(), "CONT");
        self.paused = false;
    }

    /// The server process's id (e.g. to read its memory use).
    ///
    /// # Panics
    /// If the server is not running.
    pub fn pid(&self) -> u32 {
        match &self.child {
            Some(child) => child.id(),
            None => panic!("nats-server is not running (killed or stopped; use restart())"),
        }
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("nats-server.log")
    }

    fn log_tail(&self) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
    }

    async fn spawn_and_wait(&mut self) {
        // A port below the ephemeral range, free a moment ago, kept across
        // restarts (see `stable_port`). Another test may take the same one
        // at the same moment: a first start then picks again.
        let first_start = self.port.is_none();
        for attempt in 1.. {
            let port = *self.port.get_or_insert_with(crate::stable_port);
            self.spawn_on(port);
            match self.wait_ready().await {
                Ok(()) => return,
                Err(failure)
                    if first_start && attempt < 5 && failure.contains("address already in use") =>
                {
                    self.port = None;
                }
                Err(failure) => panic!("{failure}"),
            }
        }
    }

    fn spawn_on(&mut self, port: u16) {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .unwrap_or_else(|e| panic!("cannot open the nats-server log: {e}"));
        let stdout = log
            .try_clone()
            .unwrap_or_else(|e| panic!("cannot clone the log file handle: {e}"));
        let port = port.to_string();
        let mut command = Command::new(&self.bin);
        command
            .arg("-c")
            .arg(self.dir.path().join("nats-server.conf"))
            .args(["-a", "127.0.0.1", "-p", &port])
            // `-m 0` would not override the config's http port (0 means "unset" to the
            // flag merge); -1 moves monitoring to a random free port.
            .args(["-m", "-1"])
            .arg("-sd")
            .arg(self.store_dir())
            .arg("--ports_file_dir")
            .arg(self.dir.path().join("ports"))
            .args(&self.args)
            // The passwords nats/permissions.conf reads from the environment.
            .envs(crate::credentials::nats_password_env())
            .stdin(Stdio::null())
            .stdout(Stdio::from(stdout))
            .stderr(Stdio::from(log));
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.bin.display()));
        self.child = Some(child);
        self.paused = false;
    }

    /// Waits until JetStream answers; the reason (with the log) when the
    /// server exits or never becomes ready.
    async fn wait_ready(&mut self) -> Result<(), String> {
        let started = Instant::now();
        loop {
            let exited = match self.child.as_mut().map(Child::try_wait) {
                Some(Ok(Some(status))) => Some(status.to_string()),
                Some(Ok(None)) => None,
                Some(Err(e)) => Some(format!("unknown status ({e})")),
                None => Some("not started".to_owned()),
            };
            if let Some(status) = exited {
                self.child = None;
                return Err(format!(
                    "nats-server ({}) exited before becoming ready: {status}\n--- server log ---\n{}",
                    self.bin.display(),
                    self.log_tail()
                ));
            }
            // Our own server bound the port (its ports file says so), not
            // another test's that took the same one.
            if let Some(port) = self.port
                && read_ports_file(&self.dir.path().join("ports"), self.pid()) == Some(port)
                && jetstream_ready(port).await
            {
                return Ok(());
            }
            if started.elapsed() > self.start_timeout {
                let tail = self.log_tail();
                self.kill();
                return Err(format!(
                    "nats-server ({}) not ready (JetStream answering on port {:?}) within {:?}\n--- server log ---\n{tail}",
                    self.bin.display(),
                    self.port,
                    self.start_timeout
                ));
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        if std::thread::panicking() && self.child.is_some() {
            eprintln!(
                "--- nats-server log (last {LOG_TAIL_LINES} lines, {}) ---\n{}",
                self.url_if_known(),
                self.log_tail()
            );
        }
        self.kill();
        // A service refused a subject it needs: nats/permissions.conf lacks
        // a permission the code uses (or the code does what it should not).
        // The refused call may have been retried or logged only, so the
        // test could pass without this.
        if !std::thread::panicking() && !self.violations_expected {
            let violations = self.permission_violations();
            if !violations.is_empty() {
                panic!(
                    "nats-server refused {} request(s) of a confined user; \
                     nats/permissions.conf and the code disagree:\n{}",
                    violations.len(),
                    violations.join("\n")
                );
            }
        }
        // `dir` (store, config, log) is removed when the TempDir field drops.
    }
}

impl NatsServer {
    fn url_if_known(&self) -> String {
        self.port.map_or_else(
            || "port unknown".to_owned(),
            |p| format!("nats://127.0.0.1:{p}"),
        )
    }
}

/// `NATS_SERVER_BIN`, else `<workspace>/.tools/bin/nats-server`; panics if missing.
fn nats_server_bin() -> PathBuf {
    let bin = match std::env::var_os("NATS_SERVER_BIN") {
        Some(path) if !path.is_empty() => PathBuf::from(path),
        _ => workspace_root()
            .join(".tools")
            .join("bin")
            .join("nats-server"),
    };
    if !bin.is_file() {
        panic!(
            "nats-server not found at {}; run `make tools` or set NATS_SERVER_BIN",
            bin.display()
        );
    }
    bin
}

/// The project config with its `store_dir` line dropped (nats-server rejects `-sd`
/// next to a configured store_dir: "Duplicate 'store_dir' configuration"), plus `extra`.
fn test_config(base: &str, base_path: &Path, extra: Option<&str>) -> String {
    let mut out = format!(
        "# Generated by stocklet-test-support from {}\n",
        base_path.display()
    );
    for line in base.lines() {
        let key = line.trim_start();
        let is_store_dir = ["store_dir", "storedir"].iter().any(|k| {
            key.strip_prefix(k)
                .is_some_and(|rest| rest.starts_with([' ', '\t', ':', '=']))
        });
        if is_store_dir {
            out.push_str("  # store_dir dropped: the store dir is passed with -sd\n");
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    if let Some(extra) = extra {
        out.push_str("\n# Extra config from NatsServerOptions\n");
        out.push_str(extra);
        out.push('\n');
    }
    out
}

/// The client port from `<dir>/<exe>_<pid>.ports` (`{"nats":["nats://127.0.0.1:N"],...}`).
fn read_ports_file(dir: &Path, pid: u32) -> Option<u16> {
    let suffix = format!("_{pid}.ports");
    let entry = fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .find(|e| e.file_name().to_string_lossy().ends_with(&suffix))?;
    let text = fs::read_to_string(entry.path()).ok()?;
    let nats = &text[text.find("nats://")?..];
    let host_port = &nats["nats://".len()..nats.find('"')?];
    host_port.rsplit_once(':')?.1.parse().ok()
}

/// Connects and asks JetStream for the account info, with short timeouts.
async fn jetstream_ready(port: u16) -> bool {
    let probe = async {
        let credentials =
            crate::credentials::nats_credentials(stocklet_service_kit::config::PROVISION_NATS_USER);
        let client = async_nats::ConnectOptions::with_user_and_password(
            credentials.user,
            credentials.password.expose().to_owned(),
        )
        .connection_timeout(Duration::from_secs(1))
        .connect(format!("nats://127.0.0.1:{port}"))
        .await
        .ok()?;
        let ready = async_nats::jetstream::new(client.clone())
            .query_account()
            .await
            .is_ok();
        let _ = client.drain().await;
        Some(ready)
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(3), probe).await,
        Ok(Some(true))
    )
}

/// Sends a signal with the `kill` command (the workspace forbids `unsafe`, so no libc).
/// Whether every thread of `pid` is stopped, per `/proc` (true where
/// `/proc` cannot tell).
fn all_threads_stopped(pid: u32) -> bool {
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return true;
    };
    tasks.flatten().all(|task| {
        let stat = fs::read_to_string(task.path().join("stat")).unwrap_or_default();
        let state = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next());
        matches!(state, Some("T" | "t") | None)
    })
}

fn signal(pid: u32, name: &str) {
    let status = Command::new("kill")
        .args(["-s", name, &pid.to_string()])
        .stdin(Stdio::null())
        .status()
        .or_else(|_| {
            // No /bin/kill: use the shell builtin.
            Command::new("sh")
                .args(["-c", &format!("kill -s {name} {pid}")])
                .status()
        })
        .unwrap_or_else(|e| panic!("cannot run `kill -s {name} {pid}`: {e}"));
    if !status.success() {
        panic!("`kill -s {name} {pid}` failed: {status}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_only_the_store_dir_line() {
        let base = "server_name: x # a store_dir mention\njetstream {\n  store_dir: \".data/nats\" # c\n  sync_interval: always\n}\n";
        let out = test_config(base, Path::new("/b.conf"), Some("max_payload: 2MB"));
        assert!(out.contains("server_name: x # a store_dir mention"));
        assert!(!out.contains(".data/nats"));
        assert!(out.contains("sync_interval: always"));
        assert!(out.trim_end().ends_with("max_payload: 2MB"));
    }

    #[test]
    fn parses_the_ports_file() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            dir.path().join("nats-server_42.ports"),
            r#"{"nats":["nats://127.0.0.1:34999"],"monitoring":["http://127.0.0.1:45747"]}"#,
        )
        .unwrap();
        assert_eq!(read_ports_file(dir.path(), 42), Some(34999));
        assert_eq!(read_ports_file(dir.path(), 43), None);
    }
}
