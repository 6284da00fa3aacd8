//! The all-in-one `stocklet` binary as the tests start it: on a private
//! nats-server and a fresh database, with demo seeding on, every service on
//! a port of its own and the gateway on another.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use stocklet_test_support::{NatsServer, TestDb, nats_password_env};

/// The internal token the binary runs with.
pub const INTERNAL_TOKEN: &str = "tour-test-internal-token-0123456789abcdef";
/// The services, in the order of the ports handed to [`Stocklet::start`].
pub const SERVICES: [&str; 7] = [
    "AUTH",
    "USER",
    "PRODUCT",
    "WAREHOUSE",
    "ORDER",
    "PAYMENT",
    "SHIPPING",
];
/// How long start-up (streams, migrations) and seeding may take.
const START: Duration = Duration::from_secs(120);

/// Loopback ports nothing listens on (held together, so they differ).
pub fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<_> = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect()
}

/// One run of the `stocklet` binary; killed on drop.
pub struct Stocklet {
    child: Child,
    log: PathBuf,
}

impl Stocklet {
    /// Starts the binary with its data (the generated JWT key) in
    /// `data_dir`; `ports` are the services' (in [`SERVICES`] order), then
    /// the gateway's.
    pub fn start(
        nats: &NatsServer,
        db: &TestDb,
        ports: &[u16],
        data_dir: &std::path::Path,
    ) -> Self {
        let log = data_dir.join(format!(
            "stocklet-{}.log",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        let out = std::fs::File::create(&log).unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_stocklet"));
        command
            .env("NATS_URL", nats.url())
            // Every service's NATS password; not the provisioner's, which a
            // running service never holds (the test provisions first).
            .envs(nats_password_env())
            .env_remove("STOCKLET_PROVISION_NATS_PASSWORD")
            .env("DATABASE_URL", &db.url)
            .env("STOCKLET_INTERNAL_TOKEN", INTERNAL_TOKEN)
            .env("STOCKLET_SEED", "true")
            .env("STOCKLET_DATA_DIR", data_dir)
            .env("STOCKLET_GATEWAY_ADDR", format!("127.0.0.1:{}", ports[7]))
            .env("LOG_FORMAT", "json")
            .env("RUST_LOG", "info")
            // The tour must work with the demo admin's defaults.
            .env_remove("STOCKLET_ADMIN_EMAIL")
            .env_remove("STOCKLET_ADMIN_PASSWORD")
            .env_remove("STOCKLET_JWT_KEY_FILE")
            .env_remove("STOCKLET_JWT_KEY_PEM")
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out);
        for (service, port) in SERVICES.iter().zip(ports) {
            command
                .env(
                    format!("STOCKLET_{service}_ADDR"),
                    format!("127.0.0.1:{port}"),
                )
                .env(
                    format!("STOCKLET_{service}_URL"),
                    format!("http://127.0.0.1:{port}"),
                );
        }
        let child = command.spawn().expect("the stocklet binary starts");
        Stocklet { child, log }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn assert_running(&mut self) {
        if let Some(status) = self.child.try_wait().unwrap() {
            panic!("stocklet exited with {status}; its log:\n{}", self.log());
        }
    }

    /// Waits until `/readyz` answers 200.
    pub fn await_ready(&mut self, gateway: &str) {
        let deadline = Instant::now() + START;
        loop {
            self.assert_running();
            let ready = Command::new("curl")
                .args(["-fsS", "--max-time", "2", &format!("{gateway}/readyz")])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .expect("curl is installed (the tour needs it too)");
            if ready.success() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the gateway never became ready; stocklet's log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Waits for the seed's outcome; returns its log line.
    pub fn await_seeded(&mut self) -> String {
        let deadline = Instant::now() + START;
        loop {
            self.assert_running();
            let log = self.log();
            if let Some(line) = log.lines().find(|l| l.contains("demo data seeded")) {
                return line.to_owned();
            }
            assert!(
                !log.contains("seeding demo data failed"),
                "seeding failed; stocklet's log:\n{log}"
            );
            assert!(
                Instant::now() < deadline,
                "seeding did not finish; stocklet's log:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// SIGTERM, as Ctrl-C would; waits for a clean exit.
    pub fn stop(mut self) {
        let pid = self.child.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(
                    status.success(),
                    "stocklet stopped with {status}; its log:\n{}",
                    self.log()
                );
                return;
            }
            assert!(
                Instant::now() < deadline,
                "stocklet did not stop on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Stocklet {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
