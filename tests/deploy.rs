//! The deployment files agree with the compose specification and with
//! each other: every bridge replica has its own spool volume, sits behind
//! the load balancer, is scraped by Prometheus, and gets more time to stop
//! than the bridge's drain deadline; broker data lives in named volumes,
//! every long-running service comes back after a reboot, only the load
//! balancer is published on every interface, and the topic takes the
//! largest callback the bridge accepts. On Kubernetes: a pinned image
//! named through kustomize, and no `replicas` beside the autoscaler.
//! (No Docker engine or cluster runs here: these read the files.)

use std::path::Path;

use openim_bridge::Settings;
use serde_json::Value;

fn read(path: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(path)).unwrap()
}

/// docker-compose.yml with YAML anchors and merge keys (`<<: *bridge`)
/// resolved, as compose itself reads it.
fn compose() -> Value {
    let mut yaml: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&read("docker-compose.yml")).expect("docker-compose.yml is YAML");
    yaml.apply_merge().expect("merge keys resolve");
    serde_json::to_value(yaml).unwrap()
}

fn compose_errors(doc: &Value) -> Vec<String> {
    let schema: Value = serde_json::from_str(&read("tests/schemas/compose-spec.json")).unwrap();
    let validator = jsonschema::validator_for(&schema).expect("compose schema compiles");
    validator
        .iter_errors(doc)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect()
}

/// The bridge services (`bridge-N`), after YAML merge keys are applied.
fn bridges(doc: &Value) -> Vec<(String, Value)> {
    doc["services"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(name, _)| name.starts_with("bridge-"))
        .map(|(name, service)| (name.clone(), service.clone()))
        .collect()
}

#[test]
fn compose_file_follows_the_compose_specification() {
    let doc = compose();
    let errors = compose_errors(&doc);
    assert!(errors.is_empty(), "{errors:#?}");
    // The check itself can fail: a broken file is reported.
    let mut broken = doc.clone();
    broken["services"]["load-balancer"]["ports"] = Value::from(8080);
    broken["services"]["prometheus"]["restart"] = Value::from(["always"]);
    assert_eq!(
        compose_errors(&broken).len(),
        2,
        "{:#?}",
        compose_errors(&broken)
    );
}

#[test]
fn every_replica_has_its_own_spool_and_time_to_drain() {
    let doc = compose();
    let bridges = bridges(&doc);
    assert!(bridges.len() >= 2, "two replicas behind the load balancer");
    let shutdown = Settings::default().shutdown;
    let drain_ms = shutdown.ready_delay_ms + shutdown.drain_timeout_ms;
    let mut spools = Vec::new();
    for (name, service) in &bridges {
        let volumes = service["volumes"]
            .as_array()
            .unwrap_or_else(|| panic!("{name} has no volumes"));
        let spool = volumes
            .iter()
            .filter_map(Value::as_str)
            .find(|v| v.ends_with(":/var/lib/openim-bridge/spool"))
            .unwrap_or_else(|| panic!("{name} has no spool volume"));
        spools.push(spool.split(':').next().unwrap().to_owned());
        let grace = service["stop_grace_period"]
            .as_str()
            .unwrap_or_else(|| panic!("{name}: stop_grace_period"));
        let seconds: u64 = grace.trim_end_matches('s').parse().unwrap();
        assert!(
            seconds * 1000 > drain_ms,
            "{name}: stop_grace_period {grace} <= ready delay + drain {drain_ms} ms"
        );
        assert!(
            doc["volumes"].get(&spools[spools.len() - 1]).is_some(),
            "{name}: volume not declared"
        );
    }
    let mut unique = spools.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(
        unique.len(),
        spools.len(),
        "replicas share a spool: {spools:?}"
    );
}

#[test]
fn load_balancer_and_prometheus_know_every_replica() {
    let doc = compose();
    let haproxy = read("deploy/haproxy/haproxy.cfg");
    let prometheus = read("deploy/prometheus/prometheus.yml");
    assert_eq!(
        doc["services"]["load-balancer"]["volumes"][0].as_str(),
        Some("./deploy/haproxy:/usr/local/etc/haproxy:ro"),
        "compose runs the shipped HAProxy file, from a folder mount (a file mount keeps the old inode after an edit)"
    );
    for (name, _) in bridges(&doc) {
        assert!(
            haproxy.contains(&format!("server {name} {name}:8080")),
            "haproxy backend lacks {name}"
        );
        assert!(
            prometheus.contains(&format!("\"{name}:8080\"")),
            "prometheus lacks {name}"
        );
    }
}

#[test]
fn grafana_dashboard_uses_only_metrics_the_bridge_exports() {
    let dashboard: Value =
        serde_json::from_str(&read("deploy/grafana/openim-bridge.json")).unwrap();
    let stats = openim_bridge::stats::Stats::default();
    stats.init_series("kafka");
    let exported = stats.render();
    let panels = dashboard["panels"].as_array().unwrap();
    assert!(panels.len() >= 5);
    let mut checked = 0;
    for target in panels.iter().flat_map(|p| p["targets"].as_array().unwrap()) {
        let expr = target["expr"].as_str().unwrap();
        for name in expr
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter(|w| w.starts_with("openim_bridge_"))
        {
            // Samples are `family_total` (counters), `family_bucket` (histograms).
            let family = name.trim_end_matches("_total").trim_end_matches("_bucket");
            assert!(
                exported.contains(&format!("# TYPE {family} ")),
                "dashboard uses {name}, which the bridge does not export"
            );
            checked += 1;
        }
    }
    assert!(checked >= 8, "only {checked} metric references found");
}

fn kubernetes_validate(files: &[std::path::PathBuf]) -> std::process::Output {
    let tool = std::env::var("OPENIM_BRIDGE_KUBERNETES_VALIDATE")
        .unwrap_or_else(|_| "kubernetes-validate".to_owned());
    std::process::Command::new(&tool)
        .args(["--strict", "--kubernetes-version", "1.33.0"])
        .args(files)
        .output()
        .unwrap_or_else(|err| {
            panic!(
                "cannot run {tool} ({err}): run scripts/test, which installs kubernetes-validate"
            )
        })
}

#[test]
fn kubernetes_manifests_pass_the_kubernetes_schemas() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/kubernetes");
    // kustomization.yaml is kustomize's, not an API object; jobs/ holds
    // what an operator runs by hand (the drain Job, its ORDINAL filled in).
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|path| path.is_file() && !path.ends_with("kustomization.yaml"))
        .collect();
    let drain =
        std::env::temp_dir().join(format!("openim-bridge-drain-{}.yaml", std::process::id()));
    std::fs::write(
        &drain,
        read("deploy/kubernetes/jobs/drain.yaml").replace("ORDINAL", "2"),
    )
    .unwrap();
    files.push(drain.clone());
    files.push(dir.join("sync/deployment.yaml"));
    files.sort();
    assert!(files.len() >= 7, "{files:?}");
    let output = kubernetes_validate(&files);
    std::fs::remove_file(drain).unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{report}");
    for kind in [
        "statefulset",
        "service",
        "configmap",
        "poddisruptionbudget",
        "horizontalpodautoscaler",
        "job",
        "deployment",
    ] {
        assert!(
            report.contains(&format!("passed for resource {kind}/")),
            "{kind} not validated:\n{report}"
        );
    }
    // The check can fail: an unknown field is refused in strict mode.
    let broken =
        std::env::temp_dir().join(format!("openim-bridge-broken-{}.yaml", std::process::id()));
    std::fs::write(
        &broken,
        read("deploy/kubernetes/pdb.yaml")
            .replace("minAvailable: 1", "minAvailable: 1\n  minimumAvailable: 1"),
    )
    .unwrap();
    let output = kubernetes_validate(std::slice::from_ref(&broken));
    std::fs::remove_file(broken).unwrap();
    assert!(!output.status.success(), "a broken manifest passed");
}

#[test]
fn kubernetes_config_loads_and_drains_within_the_grace_period() {
    let configmap: Value =
        serde_yaml_ng::from_str(&read("deploy/kubernetes/configmap.yaml")).unwrap();
    let toml = configmap["data"]["openim-bridge.toml"].as_str().unwrap();
    let path = std::env::temp_dir().join(format!("openim-bridge-k8s-{}.toml", std::process::id()));
    std::fs::write(&path, toml).unwrap();
    let settings = Settings::load(Some(&path), Some(Default::default()))
        .expect("the ConfigMap's settings load");
    std::fs::remove_file(path).unwrap();
    let statefulset: Value =
        serde_yaml_ng::from_str(&read("deploy/kubernetes/statefulset.yaml")).unwrap();
    let pod = &statefulset["spec"]["template"]["spec"];
    let grace_ms = pod["terminationGracePeriodSeconds"].as_u64().unwrap() * 1000;
    let shutdown = &settings.shutdown;
    assert!(
        shutdown.ready_delay_ms + shutdown.drain_timeout_ms < grace_ms,
        "ready delay {} ms + drain {} ms >= grace {grace_ms} ms",
        shutdown.ready_delay_ms,
        shutdown.drain_timeout_ms
    );
    let container = &pod["containers"][0];
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    let readiness = &container["readinessProbe"];
    assert_eq!(readiness["httpGet"]["path"], "/readyz");
    // The endpoint is removed well within the ready delay.
    let notice_ms = readiness["periodSeconds"].as_u64().unwrap()
        * readiness["failureThreshold"].as_u64().unwrap_or(3)
        * 1000;
    assert!(
        notice_ms < shutdown.ready_delay_ms,
        "readiness notices shutdown after {notice_ms} ms, ready delay {} ms",
        shutdown.ready_delay_ms
    );
    let mount = container["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "spool")
        .expect("spool mount");
    assert_eq!(
        mount["mountPath"].as_str().unwrap(),
        settings.spool.dir.to_str().unwrap()
    );
}

#[test]
fn kubernetes_takes_broker_passwords_from_the_secret() {
    let statefulset: Value =
        serde_yaml_ng::from_str(&read("deploy/kubernetes/statefulset.yaml")).unwrap();
    let env = statefulset["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .unwrap()
        .clone();
    let from_secret = |variable: &str| {
        let entry = env
            .iter()
            .find(|e| e["name"] == variable)
            .unwrap_or_else(|| panic!("{variable} is not set from the Secret"));
        let reference = &entry["valueFrom"]["secretKeyRef"];
        assert_eq!(reference["name"], "openim-bridge", "{variable}");
        assert_eq!(reference["optional"], true, "{variable}");
        reference["key"].as_str().unwrap().to_owned()
    };
    assert_eq!(
        from_secret("OPENIM_BRIDGE__KAFKA__SASL_PASSWORD"),
        "kafka-password"
    );
    assert_eq!(
        from_secret("OPENIM_BRIDGE__RABBITMQ__PASSWORD"),
        "rabbitmq-password"
    );
    // The ConfigMap's commented managed-Kafka lines, uncommented, load with
    // the password the Secret puts in the environment.
    let configmap: Value =
        serde_yaml_ng::from_str(&read("deploy/kubernetes/configmap.yaml")).unwrap();
    let toml = configmap["data"]["openim-bridge.toml"]
        .as_str()
        .unwrap()
        .replace("# security_protocol", "security_protocol")
        .replace("# sasl_", "sasl_");
    let path = std::env::temp_dir().join(format!(
        "openim-bridge-k8s-sasl-{}.toml",
        std::process::id()
    ));
    std::fs::write(&path, toml).unwrap();
    let env = [(
        "OPENIM_BRIDGE__KAFKA__SASL_PASSWORD".to_owned(),
        "from-the-secret".to_owned(),
    )];
    let loaded = Settings::load(Some(&path), Some(env.into_iter().collect()));
    std::fs::remove_file(path).unwrap();
    let settings = loaded.expect("the secured ConfigMap loads");
    assert_eq!(
        settings.kafka.security_protocol,
        openim_bridge::settings::SecurityProtocol::SaslSsl
    );
    assert_eq!(
        settings.kafka.sasl_password.as_ref().unwrap().expose(),
        "from-the-secret"
    );
}

/// Room for what an event adds to its callback's body: the CloudEvents
/// headers, the key, the `data` fields the bridge adds (event id, type,
/// conversation, times) and Kafka's record overhead. A few hundred bytes
/// in practice; 16 KiB leaves room for long ids.
const ENVELOPE_BYTES: usize = 16 * 1024;

/// Kafka's default `max.message.bytes` for a topic created without one.
const KAFKA_DEFAULT_MAX_MESSAGE_BYTES: usize = 1_048_588;

/// Services that run once and exit (others wait for them to complete).
fn one_shot(doc: &Value) -> Vec<String> {
    let mut names: Vec<String> = doc["services"]
        .as_object()
        .unwrap()
        .values()
        .filter_map(|service| service["depends_on"].as_object())
        .flat_map(|deps| deps.iter())
        .filter(|(_, dep)| dep["condition"] == "service_completed_successfully")
        .map(|(name, _)| name.clone())
        .collect();
    names.sort();
    names.dedup();
    names
}

/// Where a service keeps what must outlive its container, by image; None
/// for a service that keeps nothing (the load balancer).
fn data_path(name: &str, service: &Value) -> Option<String> {
    let image = service["image"].as_str().unwrap_or("");
    let entrypoint = service["entrypoint"].to_string();
    if entrypoint.contains("openim-sync") {
        // Keeps nothing itself: its state is PostgreSQL's.
        return None;
    }
    if service.get("build").is_some() {
        return Some("/var/lib/openim-bridge/spool".to_owned());
    }
    if image.starts_with("apache/kafka") {
        // The image writes to /tmp/kafka-logs unless told otherwise.
        let dirs = service["environment"]["KAFKA_LOG_DIRS"]
            .as_str()
            .unwrap_or_else(|| panic!("{name}: KAFKA_LOG_DIRS is not set: the logs go to /tmp/kafka-logs inside the container"));
        return Some(dirs.to_owned());
    }
    if image.starts_with("rabbitmq") {
        return Some("/var/lib/rabbitmq".to_owned());
    }
    if image.starts_with("prom/prometheus") {
        return Some("/prometheus".to_owned());
    }
    if image.starts_with("postgres") {
        return Some("/var/lib/postgresql/data".to_owned());
    }
    if image.starts_with("haproxy") || image.starts_with("otel/opentelemetry-collector") {
        return None;
    }
    if image.starts_with("jaegertracing") {
        // A viewer of recent traces, in memory (an archive goes behind the
        // collector).
        return None;
    }
    panic!("{name} ({image}): say in tests/deploy.rs where its data lives");
}

/// The named volume mounted at `path` or above it, if any.
fn named_volume_at(doc: &Value, service: &Value, path: &str) -> Option<String> {
    service["volumes"].as_array()?.iter().find_map(|volume| {
        let mut parts = volume.as_str()?.split(':');
        let (source, target) = (parts.next()?, parts.next()?);
        let inside =
            path == target || path.starts_with(&format!("{}/", target.trim_end_matches('/')));
        (inside && doc["volumes"].get(source).is_some()).then(|| source.to_owned())
    })
}

#[test]
fn every_stateful_service_keeps_its_data_in_a_named_volume() {
    let doc = compose();
    let skip = one_shot(&doc);
    let mut checked = 0;
    for (name, service) in doc["services"].as_object().unwrap() {
        if skip.contains(name) {
            continue;
        }
        let Some(path) = data_path(name, service) else {
            continue;
        };
        assert!(
            named_volume_at(&doc, service, &path).is_some(),
            "{name}: its data ({path}) is not in a named volume: `docker compose down` then `up` loses it"
        );
        checked += 1;
    }
    assert!(checked >= 6, "only {checked} stateful services found");
    // The check can fail: Kafka without KAFKA_LOG_DIRS writes to /tmp.
    let mut broken = doc.clone();
    broken["services"]["kafka"]["environment"]["KAFKA_LOG_DIRS"] = Value::from("/tmp/kafka-logs");
    assert_eq!(
        named_volume_at(&broken, &broken["services"]["kafka"], "/tmp/kafka-logs"),
        None
    );
}

#[test]
fn every_long_running_service_restarts_after_a_reboot() {
    let doc = compose();
    let skip = one_shot(&doc);
    assert_eq!(skip, ["kafka-topics"], "one-shot services");
    for (name, service) in doc["services"].as_object().unwrap() {
        if skip.contains(name) {
            continue;
        }
        let restart = service["restart"].as_str().unwrap_or("no");
        assert!(
            ["always", "unless-stopped"].contains(&restart),
            "{name}: restart `{restart}`: after a reboot or a Docker restart it stays down"
        );
    }
}

#[test]
fn the_broker_hostnames_are_fixed() {
    let doc = compose();
    // RabbitMQ names its data directory after the host (rabbit@HOST); Kafka
    // keeps its cluster id in the data it formatted.
    assert_eq!(doc["services"]["rabbitmq"]["hostname"], "rabbitmq");
    assert!(
        doc["services"]["kafka"]["environment"]["CLUSTER_ID"].is_string(),
        "kafka: CLUSTER_ID"
    );
}

/// The host address a `ports` entry binds ("" for all interfaces).
fn published_on(port: &Value) -> String {
    match port {
        Value::Object(long) => long["host_ip"].as_str().unwrap_or("").to_owned(),
        Value::String(short) => {
            // [HOST_IP:]HOST_PORT:CONTAINER_PORT, IPv6 in brackets.
            let parts: Vec<&str> = short.rsplitn(3, ':').collect();
            if parts.len() == 3 {
                parts[2].trim_matches(['[', ']']).to_owned()
            } else {
                String::new()
            }
        }
        other => other.to_string(),
    }
}

#[test]
fn only_the_load_balancer_is_published_on_every_interface() {
    let doc = compose();
    let mut local = 0;
    for (name, service) in doc["services"].as_object().unwrap() {
        for port in service["ports"].as_array().into_iter().flatten() {
            let host = published_on(port);
            if name == "load-balancer" {
                continue;
            }
            assert!(
                host == "127.0.0.1" || host == "::1",
                "{name}: port {port} is published on every interface"
            );
            local += 1;
        }
    }
    assert!(local >= 4, "{local}");
    assert_eq!(published_on(&Value::from("9092:9092")), "");
    assert_eq!(published_on(&Value::from("0.0.0.0:9092:9092")), "0.0.0.0");
    assert_eq!(published_on(&Value::from("[::1]:9092:9092")), "::1");
}

/// Every `max.message.bytes=N` the topic service's command sets.
fn topic_limits(service: &Value) -> Vec<usize> {
    let command = serde_json::to_string(&service["command"]).unwrap();
    command
        .split("max.message.bytes=")
        .skip(1)
        .map(|rest| {
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            digits.parse().unwrap()
        })
        .collect()
}

#[test]
fn the_topic_takes_the_largest_callback_the_bridge_accepts() {
    let doc = compose();
    let (_, bridge) = bridges(&doc).remove(0);
    let env: std::collections::HashMap<String, String> = bridge["environment"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(key, value)| (key.clone(), value.as_str().unwrap().to_owned()))
        .collect();
    let settings = Settings::load(None, Some(env)).expect("the bridges' settings load");
    let topics = &doc["services"]["kafka-topics"];
    let limits = topic_limits(topics);
    assert!(
        limits.len() >= 2,
        "max.message.bytes at creation and on an existing topic: {limits:?}"
    );
    for limit in limits {
        assert!(
            limit >= settings.http.max_body_bytes + ENVELOPE_BYTES,
            "topic max.message.bytes {limit} < http.max_body_bytes {} + envelope: larger callbacks are only dead-lettered",
            settings.http.max_body_bytes
        );
    }
    assert!(
        topics["command"][0]
            .as_str()
            .unwrap()
            .contains(&format!("--topic {}", settings.kafka.topic)),
        "kafka-topics creates the bridges' topic"
    );
    // Kubernetes: the topic is the cluster's; the ConfigMap keeps callbacks
    // within Kafka's default limit.
    let configmap: Value =
        serde_yaml_ng::from_str(&read("deploy/kubernetes/configmap.yaml")).unwrap();
    let toml = configmap["data"]["openim-bridge.toml"].as_str().unwrap();
    let path = std::env::temp_dir().join(format!(
        "openim-bridge-k8s-limit-{}.toml",
        std::process::id()
    ));
    std::fs::write(&path, toml).unwrap();
    let loaded = Settings::load(Some(&path), Some(Default::default()));
    std::fs::remove_file(path).unwrap();
    let max_body = loaded.unwrap().http.max_body_bytes;
    assert!(
        max_body + ENVELOPE_BYTES <= KAFKA_DEFAULT_MAX_MESSAGE_BYTES,
        "ConfigMap http.max_body_bytes {max_body} does not fit Kafka's default max.message.bytes"
    );
}

fn manifest(file: &str) -> Value {
    serde_yaml_ng::from_str(&read(&format!("deploy/kubernetes/{file}"))).unwrap()
}

#[test]
fn kubernetes_images_are_pinned_pulled_if_not_present_and_named_by_kustomize() {
    let statefulset = manifest("statefulset.yaml");
    let kustomization = manifest("kustomization.yaml");
    // The drain Job runs the image kustomize gives the StatefulSet.
    let job = manifest("jobs/drain.yaml");
    let job_container = &job["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(
        job_container["image"].as_str().unwrap(),
        format!(
            "{}:{}",
            kustomization["images"][0]["newName"].as_str().unwrap(),
            kustomization["images"][0]["newTag"].as_str().unwrap()
        )
    );
    assert_eq!(job_container["args"][0], "drain");
    let renamed: Vec<&str> = kustomization["images"]
        .as_array()
        .expect("kustomization.yaml names the image")
        .iter()
        .map(|image| image["name"].as_str().unwrap())
        .collect();
    let containers = statefulset["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap();
    for container in containers {
        let image = container["image"].as_str().unwrap();
        let (name, tag) = image.rsplit_once(':').unwrap_or((image, "latest"));
        assert_ne!(
            tag, "latest",
            "{image}: a moving tag is pulled again at every start"
        );
        assert_eq!(
            container["imagePullPolicy"], "IfNotPresent",
            "{image}: set imagePullPolicy"
        );
        assert!(
            renamed.contains(&name),
            "{name}: kustomization.yaml does not name it (pods would pull docker.io/library/{name})"
        );
    }
    // Every manifest here is applied by `kubectl apply -k`.
    let resources = kustomization["resources"].as_array().unwrap();
    let files = std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/kubernetes"))
        .unwrap()
        .filter(|entry| entry.as_ref().unwrap().path().is_file())
        .count();
    assert_eq!(resources.len() + 1, files, "{resources:?}");
}

#[test]
fn openim_sync_runs_the_named_image_with_its_settings_from_a_secret() {
    let base = manifest("kustomization.yaml");
    let sync = manifest("sync/kustomization.yaml");
    assert_eq!(base["images"], sync["images"], "one image for both");
    let deployment = manifest("sync/deployment.yaml");
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["command"][0], "/usr/local/bin/openim-sync");
    assert_eq!(container["imagePullPolicy"], "IfNotPresent");
    let env = container["env"].as_array().unwrap();
    let url = env
        .iter()
        .find(|e| e["name"] == "OPENIM_SYNC__POSTGRES__URL")
        .expect("the database URL");
    assert_eq!(url["valueFrom"]["secretKeyRef"]["name"], "openim-sync");
    // Every variable is one openim-sync reads (it refuses unknown keys).
    let vars: std::collections::HashMap<String, String> = env
        .iter()
        .map(|e| {
            let value = e["value"].as_str().unwrap_or("postgres://u@h/d");
            (e["name"].as_str().unwrap().to_owned(), value.to_owned())
        })
        .collect();
    openim_sync::settings::Settings::load(None, Some(vars))
        .expect("the Deployment's settings load");
}

#[test]
fn kustomize_renders_every_manifest_with_the_named_image() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/kubernetes");
    let output = std::process::Command::new("kubectl")
        .arg("kustomize")
        .arg(&dir)
        .output()
        .unwrap_or_else(|err| {
            panic!("cannot run kubectl ({err}): install kubectl (it carries kustomize)")
        });
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let rendered = String::from_utf8(output.stdout).unwrap();
    let kinds: Vec<String> = rendered
        .lines()
        .filter_map(|line| line.strip_prefix("kind: "))
        .map(str::to_owned)
        .collect();
    for kind in [
        "ConfigMap",
        "Service",
        "StatefulSet",
        "PodDisruptionBudget",
        "HorizontalPodAutoscaler",
    ] {
        assert!(kinds.iter().any(|k| k == kind), "{kind} missing: {kinds:?}");
    }
    let kustomization = manifest("kustomization.yaml");
    let image = &kustomization["images"][0];
    let expected = format!(
        "image: {}:{}",
        image["newName"].as_str().unwrap(),
        image["newTag"].as_str().unwrap()
    );
    assert!(
        rendered.contains(&expected),
        "{expected} not in\n{rendered}"
    );
}

#[test]
fn no_replicas_where_an_autoscaler_targets_the_set() {
    let hpa = manifest("hpa.yaml");
    let target = &hpa["spec"]["scaleTargetRef"];
    let statefulset = manifest("statefulset.yaml");
    assert_eq!(target["kind"], statefulset["kind"]);
    assert_eq!(target["name"], statefulset["metadata"]["name"]);
    assert!(
        statefulset["spec"].get("replicas").is_none(),
        "statefulset.yaml sets replicas while the HPA owns them: every `kubectl apply` resets an autoscaled set"
    );
    // A removed ordinal's spool is kept for `drain` or its next start.
    assert_eq!(
        statefulset["spec"]["persistentVolumeClaimRetentionPolicy"]["whenScaled"],
        "Retain"
    );
}

#[test]
fn the_tracing_profile_points_every_program_at_its_collector() {
    let doc = compose();
    let services = &doc["services"];
    for name in ["otel-collector", "jaeger"] {
        assert_eq!(services[name]["profiles"][0], "tracing", "{name}");
    }
    // The collector takes OTLP both ways and sends traces on to Jaeger.
    let config: Value =
        serde_yaml_ng::from_str(&read("deploy/otel-collector/config.yaml")).unwrap();
    let protocols = &config["receivers"]["otlp"]["protocols"];
    assert_eq!(protocols["grpc"]["endpoint"], "0.0.0.0:4317");
    assert_eq!(protocols["http"]["endpoint"], "0.0.0.0:4318");
    let pipeline = &config["service"]["pipelines"]["traces"];
    assert_eq!(pipeline["receivers"][0], "otlp");
    let exporters: Vec<&str> = pipeline["exporters"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let to_jaeger = exporters
        .iter()
        .find(|name| config["exporters"][**name]["endpoint"] == "jaeger:4317")
        .expect("an exporter to jaeger:4317");
    assert!(
        services.get("jaeger").is_some(),
        "{to_jaeger} needs the jaeger service"
    );
    // The bridges and openim-sync take the standard variables, off when
    // unset; with the endpoint the compose file's comment gives, both
    // export over gRPC to the collector.
    let sync = ("openim-sync".to_owned(), services["openim-sync"].clone());
    for (name, service) in bridges(&doc).into_iter().chain([sync]) {
        let env = &service["environment"];
        assert_eq!(
            env["OTEL_EXPORTER_OTLP_ENDPOINT"], "${OTEL_EXPORTER_OTLP_ENDPOINT:-}",
            "{name}"
        );
        let protocol = env["OTEL_EXPORTER_OTLP_PROTOCOL"].as_str().unwrap();
        let protocol = protocol
            .strip_prefix("${OTEL_EXPORTER_OTLP_PROTOCOL:-")
            .and_then(|rest| rest.strip_suffix('}'))
            .unwrap();
        let vars = |key: &str| match key {
            "OTEL_EXPORTER_OTLP_ENDPOINT" => Some("http://otel-collector:4317".to_owned()),
            "OTEL_EXPORTER_OTLP_PROTOCOL" => Some(protocol.to_owned()),
            _ => None,
        };
        let export = openim_otel::resolve(&Default::default(), &vars)
            .unwrap()
            .unwrap();
        assert_eq!(export.protocol, openim_otel::Protocol::Grpc, "{name}");
        assert!(services["otel-collector"]["ports"]
            .as_array()
            .unwrap()
            .iter()
            .any(|port| port.as_str().unwrap().ends_with(":4317")));
        // Unset, tracing stays off.
        let unset = |_: &str| None;
        assert_eq!(openim_otel::resolve(&Default::default(), &unset), Ok(None));
    }
}
