//! The image, as far as this machine allows without a Docker engine: the
//! Dockerfile's build context (its `COPY` lines, less `.dockerignore`) is
//! laid out in a folder and the build stage's cargo command runs there,
//! offline; the runtime stage copies files that exist, runs the binary the
//! build stage builds, and its `HEALTHCHECK` answers on a running bridge.
//! Not checked here: the base images, apt, and the image's user and file
//! permissions (they need an engine).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::process::BIN;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// One instruction: its upper-cased name and its arguments, continuation
/// lines joined.
struct Instruction {
    name: String,
    args: String,
}

/// One `FROM` stage.
struct Stage {
    name: Option<String>,
    instructions: Vec<Instruction>,
}

impl Stage {
    fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.instructions
            .iter()
            .filter(move |i| i.name == name)
            .map(|i| i.args.as_str())
    }

    fn one<'a>(&'a self, name: &'a str) -> &'a str {
        let found: Vec<&str> = self.all(name).collect();
        assert_eq!(found.len(), 1, "{name}: {found:?}");
        found[0]
    }
}

fn dockerfile() -> Vec<Stage> {
    let text = std::fs::read_to_string(Path::new(ROOT).join("Dockerfile")).unwrap();
    let mut stages: Vec<Stage> = Vec::new();
    let mut pending = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && pending.is_empty()) {
            continue;
        }
        if let Some(head) = trimmed.strip_suffix('\\') {
            pending.push_str(head);
            pending.push(' ');
            continue;
        }
        pending.push_str(trimmed);
        let full = std::mem::take(&mut pending);
        let (name, args) = full.split_once(char::is_whitespace).unwrap_or((&full, ""));
        let name = name.to_ascii_uppercase();
        let args = args.split_whitespace().collect::<Vec<_>>().join(" ");
        if name == "FROM" {
            let words: Vec<&str> = args.split(' ').collect();
            let alias = match words.as_slice() {
                [_, as_, alias] if as_.eq_ignore_ascii_case("as") => Some((*alias).to_owned()),
                _ => None,
            };
            stages.push(Stage {
                name: alias,
                instructions: Vec::new(),
            });
        } else {
            stages
                .last_mut()
                .expect("an instruction before FROM")
                .instructions
                .push(Instruction { name, args });
        }
    }
    assert!(stages.len() >= 2, "a build and a runtime stage");
    stages
}

/// A `COPY`: its `--from` stage, its sources and its destination.
struct Copy {
    from: Option<String>,
    sources: Vec<String>,
    dest: String,
}

fn copies(stage: &Stage) -> Vec<Copy> {
    stage
        .all("COPY")
        .map(|args| {
            assert!(!args.starts_with('['), "JSON-form COPY: {args}");
            let mut from = None;
            let mut paths = Vec::new();
            for word in args.split(' ') {
                if let Some(stage) = word.strip_prefix("--from=") {
                    from = Some(stage.to_owned());
                } else if !word.starts_with("--") {
                    paths.push(word.to_owned());
                }
            }
            let dest = paths.pop().expect("COPY has a destination");
            Copy {
                from,
                sources: paths,
                dest,
            }
        })
        .collect()
}

/// `.dockerignore`, as docker reads it: patterns anchored at the context's
/// root, Go `filepath.Match` globs plus `**`, `!` re-including, the last
/// matching line winning; a path is excluded when it or a folder above it
/// matches.
struct DockerIgnore(Vec<(bool, globset::GlobMatcher)>);

impl DockerIgnore {
    fn load() -> Self {
        let text = std::fs::read_to_string(Path::new(ROOT).join(".dockerignore"))
            .expect(".dockerignore: without it target/ and local spools enter the build context");
        let rules = text
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty() && !line.starts_with('#'))
            .map(|line| {
                let (keep, pattern) = match line.strip_prefix('!') {
                    Some(rest) => (true, rest),
                    None => (false, line),
                };
                let pattern = pattern.trim_start_matches("./").trim_start_matches('/');
                let glob = globset::GlobBuilder::new(pattern.trim_end_matches('/'))
                    .literal_separator(true)
                    .build()
                    .unwrap_or_else(|err| panic!(".dockerignore `{line}`: {err}"));
                (keep, glob.compile_matcher())
            })
            .collect();
        Self(rules)
    }

    /// Whether `path` (relative to the context) is left out.
    fn excludes(&self, path: &str) -> bool {
        let mut excluded = false;
        for (keep, glob) in &self.0 {
            let mut prefix = String::new();
            for (i, part) in path.split('/').enumerate() {
                if i > 0 {
                    prefix.push('/');
                }
                prefix.push_str(part);
                if glob.is_match(&prefix) {
                    excluded = !keep;
                    break;
                }
            }
        }
        excluded
    }
}

#[test]
fn dockerignore_keeps_build_output_and_spools_out_of_the_context() {
    let ignore = DockerIgnore::load();
    for path in [
        "target/release/openim-bridge",
        "target",
        "fuzz/target/x",
        "spool/8080/00000001.seg",
        ".git/HEAD",
    ] {
        assert!(ignore.excludes(path), "{path} enters the build context");
    }
    for path in [
        "Cargo.toml",
        "src/spool/mod.rs",
        "benches/spool.rs",
        "test-kit/Cargo.toml",
        "deploy/openim-bridge.example.toml",
    ] {
        assert!(!ignore.excludes(path), "{path} is left out of the context");
    }
}

/// The build stage's `cargo build` command and the binaries it names (the
/// bridge's first).
fn build_command(build: &Stage) -> (String, Vec<String>) {
    let command = build
        .all("RUN")
        .find(|run| run.contains("cargo build"))
        .expect("the build stage runs cargo build")
        .to_owned();
    let words: Vec<&str> = command.split(' ').collect();
    let bins: Vec<String> = words
        .windows(2)
        .filter(|pair| pair[0] == "--bin")
        .map(|pair| pair[1].to_owned())
        .collect();
    assert_eq!(
        bins.first().map(String::as_str),
        Some("openim-bridge"),
        "{command}"
    );
    assert!(command.contains("--release"), "{command}");
    (command, bins)
}

#[test]
fn runtime_stage_copies_what_exists_and_runs_the_built_binary() {
    let stages = dockerfile();
    let build = &stages[0];
    let runtime = stages.last().unwrap();
    let build_name = build.name.clone().expect("the build stage is named");
    let workdir = build.one("WORKDIR");
    let (_, bins) = build_command(build);
    let built: Vec<String> = bins
        .iter()
        .map(|bin| format!("{workdir}/target/release/{bin}"))
        .collect();
    let ignore = DockerIgnore::load();
    let mut installed = Vec::new();
    for copy in copies(runtime) {
        match copy.from.as_deref() {
            Some(from) => {
                assert_eq!(from, build_name, "COPY --from names the build stage");
                assert_eq!(copy.sources.len(), 1);
                assert!(
                    built.contains(&copy.sources[0]),
                    "the runtime copies {:?}, cargo builds {built:?}",
                    copy.sources
                );
                installed.push(copy.dest.clone());
            }
            None => {
                for source in &copy.sources {
                    assert!(
                        Path::new(ROOT).join(source).exists(),
                        "COPY {source}: no such file"
                    );
                    assert!(
                        !ignore.excludes(source),
                        "COPY {source}: .dockerignore leaves it out"
                    );
                }
            }
        }
    }
    assert_eq!(installed.len(), bins.len(), "every built binary is copied");
    for (path, bin) in installed.iter().zip(&bins) {
        assert!(path.ends_with(&format!("/{bin}")), "{path} for {bin}");
    }
    let entrypoint: Vec<String> = serde_json::from_str(runtime.one("ENTRYPOINT"))
        .expect("ENTRYPOINT in exec form (signals reach the bridge)");
    assert_eq!(entrypoint[0], installed[0], "ENTRYPOINT runs the bridge");
}

/// `ENV` of a stage as (name, value) pairs.
fn env(stage: &Stage) -> Vec<(String, String)> {
    stage
        .all("ENV")
        .flat_map(|args| args.split(' '))
        .map(|pair| {
            let (name, value) = pair.split_once('=').expect("ENV NAME=VALUE");
            (name.to_owned(), value.to_owned())
        })
        .collect()
}

#[test]
fn healthcheck_answers_on_a_bridge_run_with_the_images_environment() {
    let stages = dockerfile();
    let runtime = stages.last().unwrap();
    let check = runtime.one("HEALTHCHECK");
    let url = check
        .split(' ')
        .find(|word| word.starts_with("http://"))
        .expect("HEALTHCHECK calls a URL");
    let rest = url.trim_start_matches("http://");
    let (authority, path) = rest.split_at(rest.find('/').unwrap());
    let port: u16 = authority.rsplit(':').next().unwrap().parse().unwrap();
    assert_eq!(runtime.one("EXPOSE"), port.to_string());
    let default_listen = openim_bridge::Settings::default().http.listen;
    assert_eq!(
        default_listen.port(),
        port,
        "the bridge listens on {default_listen}, the check calls port {port}"
    );
    // The image's environment, on a free port and a spool of this test's.
    let spool = common::spool_dir();
    let mut vars = env(runtime);
    assert!(vars
        .iter()
        .any(|(name, _)| name == "OPENIM_BRIDGE__SPOOL__DIR"));
    vars.retain(|(name, _)| name != "OPENIM_BRIDGE__SPOOL__DIR");
    let vars: Vec<(&str, &str)> = vars
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_str()))
        .collect();
    let port = openim_bridge_test_kit::free_port();
    let listen = format!("127.0.0.1:{port}");
    let mut child = openim_bridge_test_kit::bridge::command(BIN, &listen, &spool)
        .envs(vars)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        let answer = Command::new("curl")
            .args(["-fsS", "-o", "/dev/null", "-w", "%{http_code}"])
            .arg(format!("http://{listen}{path}"))
            .output()
            .expect("curl (the image's health check runs it)");
        if answer.status.success() || Instant::now() > deadline {
            break String::from_utf8_lossy(&answer.stdout).into_owned();
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(status, "200", "GET {path}");
}

/// Copies `from` to `to`, keeping the modification time (so cargo sees an
/// unchanged file as unchanged), skipping what `.dockerignore` leaves out.
fn copy_tree(from: &Path, to: &Path, relative: &str, ignore: &DockerIgnore) {
    if ignore.excludes(relative) {
        return;
    }
    let meta = std::fs::metadata(from).unwrap_or_else(|err| panic!("COPY {relative}: {err}"));
    if meta.is_dir() {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            let name = entry.file_name().into_string().unwrap();
            copy_tree(
                &entry.path(),
                &to.join(&name),
                &format!("{relative}/{name}"),
                ignore,
            );
        }
    } else {
        std::fs::copy(from, to).unwrap();
        let file = std::fs::File::options().write(true).open(to).unwrap();
        file.set_modified(meta.modified().unwrap()).unwrap();
    }
}

/// The build stage's context as `docker build` sends it, built with its own
/// command (offline, from the local registry cache). Its target folder is
/// kept between runs: the first run builds the release binary and its
/// dependencies (minutes), later ones only what changed. A `serial_` test:
/// it takes both cores for that time.
#[test]
fn serial_docker_build_stage_builds_the_binary_from_its_context() {
    let stages = dockerfile();
    let build = &stages[0];
    let (command, bins) = build_command(build);
    let ignore = DockerIgnore::load();
    let context = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("docker-build-stage");
    std::fs::create_dir_all(&context).unwrap();
    // A fresh context each run, but the build's target folder stays.
    for entry in std::fs::read_dir(&context).unwrap() {
        let path = entry.unwrap().path();
        if path.file_name().unwrap() != "target" {
            if path.is_dir() {
                std::fs::remove_dir_all(&path).unwrap();
            } else {
                std::fs::remove_file(&path).unwrap();
            }
        }
    }
    for copy in copies(build) {
        assert!(
            copy.from.is_none(),
            "the build stage copies from the context"
        );
        let dest = context.join(copy.dest.trim_start_matches("./"));
        for source in &copy.sources {
            let target = if copy.sources.len() > 1 || copy.dest.ends_with('/') {
                std::fs::create_dir_all(&dest).unwrap();
                dest.join(Path::new(source).file_name().unwrap())
            } else {
                dest.clone()
            };
            copy_tree(&Path::new(ROOT).join(source), &target, source, &ignore);
        }
    }
    let started = Instant::now();
    let mut cargo = Command::new("sh");
    cargo.arg("-c").arg(&command).current_dir(&context);
    // Only the build's own settings: not the test run's CARGO_* (target
    // folder, manifest, package), and never the network.
    for (name, _) in std::env::vars() {
        if name.starts_with("CARGO_") && name != "CARGO_HOME" {
            cargo.env_remove(name);
        }
    }
    cargo.env("CARGO_NET_OFFLINE", "true");
    let output = cargo.output().expect("run the build stage's command");
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "`{command}` failed in the image's build context:\n{log}"
    );
    for bin in &bins {
        let binary = context.join("target/release").join(bin);
        assert!(binary.is_file(), "{} was not built", binary.display());
        let help = Command::new(&binary).arg("--help").output().unwrap();
        assert!(
            help.status.success(),
            "{}",
            String::from_utf8_lossy(&help.stderr)
        );
    }
    eprintln!(
        "build stage: `{command}` in {:.1} s ({})",
        started.elapsed().as_secs_f64(),
        log.lines().last().unwrap_or("")
    );
}
