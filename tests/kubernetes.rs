//! The Kubernetes files, as `kubectl apply -k` would apply them: every
//! overlay (`deploy/kubernetes/overlays/*`: Kafka, RabbitMQ, a secured
//! Kafka with a Secret) rendered by `kubectl kustomize` passes the
//! Kubernetes schemas, and its settings load with what the StatefulSet puts
//! beside them and drain within the grace period; the readiness probe rides
//! out a stall; images are pinned and named by kustomize; no `replicas`
//! beside the autoscaler. (No cluster runs here: these render and read the
//! files.)

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use openim_bridge::settings::{SecurityProtocol, SinkKind};
use openim_bridge::Settings;
use serde::Deserialize;
use serde_json::Value;

/// Every overlay, with the sink its settings choose.
const OVERLAYS: [(&str, SinkKind); 3] = [
    ("kafka", SinkKind::Kafka),
    ("rabbitmq", SinkKind::Rabbitmq),
    ("kafka-secured", SinkKind::Kafka),
];

/// Room for what an event adds to its callback's body (as in deploy.rs).
const ENVELOPE_BYTES: usize = 16 * 1024;

/// Kafka's default `max.message.bytes` for a topic created without one.
const KAFKA_DEFAULT_MAX_MESSAGE_BYTES: usize = 1_048_588;

/// How long a whole fleet may stall (CPU throttling, a paused node) without
/// a replica leaving the endpoints: the operations test's freeze.
const STALL_MS: u64 = 1000;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap()
}

fn manifest(file: &str) -> Value {
    serde_yaml_ng::from_str(&read(&format!("deploy/kubernetes/{file}"))).unwrap()
}

/// `kubectl kustomize deploy/kubernetes/<dir>`, as text.
fn kustomize(dir: &str) -> String {
    let output = std::process::Command::new("kubectl")
        .arg("kustomize")
        .arg(root().join("deploy/kubernetes").join(dir))
        .output()
        .unwrap_or_else(|err| {
            panic!("cannot run kubectl ({err}): install kubectl (it carries kustomize)")
        });
    assert!(
        output.status.success(),
        "kubectl kustomize {dir}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// The objects of a rendered overlay.
fn objects(rendered: &str) -> Vec<Value> {
    serde_yaml_ng::Deserializer::from_str(rendered)
        .map(|document| Value::deserialize(document).unwrap())
        .collect()
}

fn find<'a>(objects: &'a [Value], kind: &str) -> &'a Value {
    objects
        .iter()
        .find(|object| object["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} rendered"))
}

fn kubernetes_validate(files: &[PathBuf]) -> std::process::Output {
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
fn every_overlay_renders_and_passes_the_kubernetes_schemas() {
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for (overlay, _) in OVERLAYS {
        let path = dir.path().join(format!("{overlay}.yaml"));
        std::fs::write(&path, kustomize(&format!("overlays/{overlay}"))).unwrap();
        files.push(path);
    }
    // What an operator applies beside them: openim-sync, and the drain Job
    // with its ORDINAL filled in.
    let sync = dir.path().join("sync.yaml");
    std::fs::write(&sync, kustomize("sync")).unwrap();
    files.push(sync);
    let drain = dir.path().join("drain.yaml");
    std::fs::write(
        &drain,
        read("deploy/kubernetes/jobs/drain.yaml").replace("ORDINAL", "2"),
    )
    .unwrap();
    files.push(drain);
    let output = kubernetes_validate(&files);
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
    // Each overlay renders the whole base.
    for (overlay, _) in OVERLAYS {
        let rendered = objects(&kustomize(&format!("overlays/{overlay}")));
        for kind in [
            "ConfigMap",
            "Service",
            "StatefulSet",
            "PodDisruptionBudget",
            "HorizontalPodAutoscaler",
        ] {
            find(&rendered, kind);
        }
    }
    // The check can fail: an unknown field is refused in strict mode.
    let broken = dir.path().join("broken.yaml");
    std::fs::write(
        &broken,
        read("deploy/kubernetes/base/pdb.yaml")
            .replace("minAvailable: 1", "minAvailable: 1\n  minimumAvailable: 1"),
    )
    .unwrap();
    let output = kubernetes_validate(std::slice::from_ref(&broken));
    assert!(!output.status.success(), "a broken manifest passed");
}

/// An overlay's settings as its pods load them: the ConfigMap's TOML, with
/// the StatefulSet's plain `env` values and `secrets` (variable -> value)
/// for what Secrets provide; `files` rewrites a mounted directory to a
/// local one.
fn load_settings(
    objects: &[Value],
    secrets: &[(&str, &str)],
    files: Option<(&str, &Path)>,
) -> Result<openim_bridge::Validated, openim_bridge::settings::ConfigError> {
    let mut toml = find(objects, "ConfigMap")["data"]["openim-bridge.toml"]
        .as_str()
        .unwrap()
        .to_owned();
    if let Some((mounted, local)) = files {
        toml = toml.replace(mounted, local.to_str().unwrap());
    }
    let container = &find(objects, "StatefulSet")["spec"]["template"]["spec"]["containers"][0];
    let mut env: HashMap<String, String> = container["env"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|entry| {
            let value = entry["value"].as_str()?;
            Some((entry["name"].as_str().unwrap().to_owned(), value.to_owned()))
        })
        .collect();
    for (name, value) in secrets {
        env.insert((*name).to_owned(), (*value).to_owned());
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("openim-bridge.toml");
    std::fs::write(&path, toml).unwrap();
    Settings::load(Some(&path), Some(env))
}

#[test]
fn every_overlay_s_settings_load_and_drain_within_the_grace_period() {
    // What the kafka-secured overlay's Secret holds, mounted.
    let secret = tempfile::tempdir().unwrap();
    std::fs::write(secret.path().join("password"), "from-the-secret\n").unwrap();
    std::fs::write(
        secret.path().join("ca.crt"),
        "-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    for (overlay, sink) in OVERLAYS {
        let rendered = objects(&kustomize(&format!("overlays/{overlay}")));
        let settings = match overlay {
            "kafka-secured" => load_settings(
                &rendered,
                &[],
                Some(("/etc/openim-bridge-kafka", secret.path())),
            ),
            "rabbitmq" => load_settings(
                &rendered,
                &[("OPENIM_BRIDGE__RABBITMQ__PASSWORD", "from-the-secret")],
                None,
            ),
            _ => load_settings(&rendered, &[], None),
        }
        .unwrap_or_else(|err| panic!("overlay {overlay}: {err}"));
        assert_eq!(settings.sink.kind, sink, "{overlay}");
        let pod = &find(&rendered, "StatefulSet")["spec"]["template"]["spec"];
        let grace_ms = pod["terminationGracePeriodSeconds"].as_u64().unwrap() * 1000;
        let shutdown = &settings.shutdown;
        assert!(
            shutdown.ready_delay_ms + shutdown.drain_timeout_ms < grace_ms,
            "{overlay}: ready delay {} ms + drain {} ms >= grace {grace_ms} ms",
            shutdown.ready_delay_ms,
            shutdown.drain_timeout_ms
        );
        let mount = pod["containers"][0]["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["name"] == "spool")
            .expect("spool mount");
        assert_eq!(
            mount["mountPath"].as_str().unwrap(),
            settings.spool.dir.to_str().unwrap(),
            "{overlay}: the spool is on the pod's volume"
        );
        if sink == SinkKind::Kafka {
            // The topic is the cluster's: stay within Kafka's default limit.
            assert!(
                settings.http.max_body_bytes + ENVELOPE_BYTES <= KAFKA_DEFAULT_MAX_MESSAGE_BYTES,
                "{overlay}: http.max_body_bytes {} does not fit Kafka's default max.message.bytes",
                settings.http.max_body_bytes
            );
        }
        if overlay == "kafka-secured" {
            assert_eq!(settings.kafka.security_protocol, SecurityProtocol::SaslSsl);
            assert_eq!(
                settings.kafka.sasl_password.as_ref().unwrap().expose(),
                "from-the-secret"
            );
        }
    }
}

/// The Secret `openim-bridge-kafka`'s volume in `pod`, and where its first
/// container mounts it.
fn kafka_secret(pod: &Value) -> Option<(&Value, &str)> {
    let volume = pod["volumes"]
        .as_array()?
        .iter()
        .find(|volume| volume["secret"]["secretName"] == "openim-bridge-kafka")?;
    let mount = pod["containers"][0]["volumeMounts"]
        .as_array()?
        .iter()
        .find(|mount| mount["name"] == volume["name"])?;
    Some((volume, mount["mountPath"].as_str()?))
}

#[test]
fn the_secured_overlay_mounts_its_secret_where_its_settings_look() {
    let rendered = objects(&kustomize("overlays/kafka-secured"));
    let toml = find(&rendered, "ConfigMap")["data"]["openim-bridge.toml"]
        .as_str()
        .unwrap()
        .to_owned();
    let pod = &find(&rendered, "StatefulSet")["spec"]["template"]["spec"];
    let (volume, path) = kafka_secret(pod).expect("the Secret openim-bridge-kafka is mounted");
    assert_ne!(
        volume["secret"]["optional"], true,
        "without the Secret the pod must wait, not start without a password"
    );
    for key in ["sasl_password_file", "ssl_ca_file"] {
        assert!(
            toml.contains(&format!("{key} = \"{path}/")),
            "{key} is not read from the Secret's mount {path}"
        );
    }
    // The drain Job reads a secured overlay's Secret at the same place, and
    // still runs for the other overlays (optional).
    let job = manifest("jobs/drain.yaml");
    let (job_volume, job_path) =
        kafka_secret(&job["spec"]["template"]["spec"]).expect("the drain Job mounts the Secret");
    assert_eq!(job_volume["secret"]["optional"], true);
    assert_eq!(job_path, path);
}

#[test]
fn kubernetes_takes_broker_passwords_from_the_secret() {
    let statefulset = manifest("base/statefulset.yaml");
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
    assert_eq!(from_secret("OPENIM_BRIDGE__HTTP__AUTH_TOKEN"), "auth-token");
}

/// The rule HAProxy's file follows too: one missed check does not take a
/// replica out (a stall of the whole fleet would otherwise leave the
/// Service with no endpoint, refusing every callback); a replica that
/// answers 503 (SIGTERM, a full spool) is out well within the ready delay.
#[test]
fn the_readiness_probe_rides_out_a_stall_and_notices_a_stop() {
    let statefulset = manifest("base/statefulset.yaml");
    let probe = &statefulset["spec"]["template"]["spec"]["containers"][0]["readinessProbe"];
    assert_eq!(probe["httpGet"]["path"], "/readyz");
    let period_ms = probe["periodSeconds"].as_u64().unwrap_or(10) * 1000;
    let timeout_ms = probe["timeoutSeconds"].as_u64().unwrap_or(1) * 1000;
    let failures = probe["failureThreshold"].as_u64().unwrap_or(3);
    assert!(failures >= 2, "one failed check takes a replica out");
    assert!(
        timeout_ms > STALL_MS,
        "a {STALL_MS} ms stall fails a probe with a {timeout_ms} ms timeout"
    );
    let ready_delay_ms = Settings::default().shutdown.ready_delay_ms;
    assert!(
        period_ms * failures < ready_delay_ms,
        "a replica answering 503 is noticed after {} ms, beyond the {ready_delay_ms} ms ready delay",
        period_ms * failures
    );
    assert_eq!(
        statefulset["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["httpGet"]
            ["path"],
        "/healthz"
    );
}

#[test]
fn kubernetes_images_are_pinned_pulled_if_not_present_and_named_by_kustomize() {
    let kustomization = manifest("base/kustomization.yaml");
    let image = &kustomization["images"][0];
    let named = format!(
        "{}:{}",
        image["newName"].as_str().unwrap(),
        image["newTag"].as_str().unwrap()
    );
    for (overlay, _) in OVERLAYS {
        let rendered = objects(&kustomize(&format!("overlays/{overlay}")));
        let containers = find(&rendered, "StatefulSet")["spec"]["template"]["spec"]["containers"]
            .as_array()
            .unwrap()
            .clone();
        for container in containers {
            assert_eq!(container["image"], named.as_str(), "{overlay}");
            assert_eq!(container["imagePullPolicy"], "IfNotPresent", "{overlay}");
        }
    }
    assert!(
        !named.ends_with(":latest"),
        "a moving tag is pulled again at every start"
    );
    // The drain Job runs the image kustomize gives the StatefulSet.
    let job = manifest("jobs/drain.yaml");
    let job_container = &job["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(job_container["image"], named.as_str());
    assert_eq!(job_container["args"][0], "drain");
    // Every manifest in the base is one of its resources.
    let resources = kustomization["resources"].as_array().unwrap();
    let files = std::fs::read_dir(root().join("deploy/kubernetes/base"))
        .unwrap()
        .filter(|entry| entry.as_ref().unwrap().path().is_file())
        .count();
    assert_eq!(resources.len() + 1, files, "{resources:?}");
}

#[test]
fn openim_sync_runs_the_named_image_with_its_settings_from_a_secret() {
    let base = manifest("base/kustomization.yaml");
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
    let vars: HashMap<String, String> = env
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
fn no_replicas_where_an_autoscaler_targets_the_set() {
    for (overlay, _) in OVERLAYS {
        let rendered = objects(&kustomize(&format!("overlays/{overlay}")));
        let target = &find(&rendered, "HorizontalPodAutoscaler")["spec"]["scaleTargetRef"];
        let statefulset = find(&rendered, "StatefulSet");
        assert_eq!(target["kind"], statefulset["kind"]);
        assert_eq!(target["name"], statefulset["metadata"]["name"]);
        assert!(
            statefulset["spec"].get("replicas").is_none(),
            "{overlay}: the StatefulSet sets replicas while the HPA owns them: every `kubectl apply` resets an autoscaled set"
        );
        // A removed ordinal's spool is kept for `drain` or its next start.
        assert_eq!(
            statefulset["spec"]["persistentVolumeClaimRetentionPolicy"]["whenScaled"],
            "Retain"
        );
    }
}
