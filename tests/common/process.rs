//! The real `clawgate run` as a child process: started on a config
//! directory, its addresses read from its startup line, its stderr kept
//! line by line for tests to wait on, killed when dropped.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::ConfigDir;

/// The real `clawgate run`, its addresses parsed from its startup line.
pub struct Proc {
    pub child: Child,
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    pub stderr: mpsc::Receiver<String>,
}

impl Proc {
    pub fn start(cfg: &ConfigDir) -> Proc {
        Proc::start_with(cfg, Command::new(env!("CARGO_BIN_EXE_clawgate")))
    }

    /// Pinned to one CPU (`taskset`, which execs it: same PID), as the
    /// benchmarks and a one-core deployment run it.
    pub fn start_pinned(cfg: &ConfigDir) -> Proc {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let cpus = status
            .lines()
            .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
            .unwrap();
        let first = cpus.trim().split([',', '-']).next().unwrap().to_string();
        let mut cmd = Command::new("taskset");
        cmd.args(["-c", &first, env!("CARGO_BIN_EXE_clawgate")]);
        Proc::start_with(cfg, cmd)
    }

    // The child is killed and waited for in `Drop`.
    #[allow(clippy::zombie_processes)]
    pub fn start_with(cfg: &ConfigDir, mut cmd: Command) -> Proc {
        let mut child = cmd
            .args(["run", "--config"])
            .arg(cfg.path())
            .env("CLAWGATE_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, rx) = mpsc::channel();
        let err = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let line = rx
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .expect("clawgate printed its listening line");
            if line.contains("clawgate listening") {
                let field = |name: &str| -> SocketAddr {
                    let rest = &line[line.find(&format!("{name}=")).unwrap() + name.len() + 1..];
                    rest.split_whitespace().next().unwrap().parse().unwrap()
                };
                return Proc {
                    addr: field("addr"),
                    admin: field("admin_addr"),
                    child,
                    stderr: rx,
                };
            }
        }
    }

    /// How many threads the process has now.
    pub fn threads(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/task", self.child.id()))
            .unwrap()
            .count()
    }

    /// The names of the process's threads now.
    pub fn thread_names(&self) -> Vec<String> {
        std::fs::read_dir(format!("/proc/{}/task", self.child.id()))
            .unwrap()
            .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
            .map(|n| n.trim().to_string())
            .collect()
    }

    /// Wait (bounded) until the process is down to one thread.
    pub fn wait_one_thread(&self, within: Duration) {
        let deadline = Instant::now() + within;
        while self.threads() != 1 {
            assert!(
                Instant::now() < deadline,
                "still {} threads after {within:?}: {:?}",
                self.threads(),
                self.thread_names()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill {sig} failed");
    }

    /// Wait (bounded) for a stderr line containing `needle`.
    pub fn wait_log(&self, needle: &str, within: Duration) -> String {
        let deadline = Instant::now() + within;
        while let Ok(line) = self
            .stderr
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            if line.contains(needle) {
                return line;
            }
        }
        panic!("no log line containing {needle:?} within {within:?}");
    }

    pub fn wait_exit(&mut self, within: Duration) -> Option<i32> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn bearer(t: &str) -> String {
    format!("Bearer {t}")
}

/// A keep-alive request to `path` with `token` and, if given, an Origin.
pub fn member_request(
    path: &str,
    token: &str,
    origin: Option<&str>,
) -> http::Request<http_body_util::Empty<bytes::Bytes>> {
    let mut b = http::Request::builder()
        .uri(path)
        .header("host", "gw.test")
        .header("authorization", bearer(token));
    if let Some(o) = origin {
        b = b.header("origin", o);
    }
    b.body(http_body_util::Empty::new()).unwrap()
}

/// What a finished `clawgate` command printed, and its exit code.
pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }
}

/// Run the real binary, bounded to 60 s.
pub fn cli(args: &[&str]) -> Out {
    let mut child = Command::new(env!("CARGO_BIN_EXE_clawgate"))
        .args(args)
        .env_remove("CLAWGATE_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the clawgate binary starts");
    let mut so = child.stdout.take().unwrap();
    let mut se = child.stderr.take().unwrap();
    let ro = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = so.read_to_string(&mut s);
        s
    });
    let re = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = se.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("clawgate {args:?} did not finish within 60 s");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Out {
        code: status.code().unwrap_or(-1),
        stdout: ro.join().unwrap(),
        stderr: re.join().unwrap(),
    }
}

/// The same, from async tests whose runtime also serves clawgate.
pub async fn cli_async(args: Vec<String>) -> Out {
    tokio::task::spawn_blocking(move || {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        cli(&a)
    })
    .await
    .unwrap()
}
