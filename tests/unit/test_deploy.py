"""The compose stack cannot run here (no Docker engine): validate it statically. The compose file
against a schema of the keys we use, every referenced file, every port, and the environment it
hands the code location against lakehouse.settings itself."""

import json
import re
import shutil
import subprocess

import jsonschema
import pytest
import yaml
from conftest import PROJECT_ROOT

DEPLOY = PROJECT_ROOT / "deploy"
COMPOSE = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
ENV_EXAMPLE = dict(
    line.split("=", 1)
    for line in (DEPLOY / ".env.example").read_text().splitlines()
    if line.strip() and not line.startswith("#")
)
VARIABLE = re.compile(r"\$\{([A-Z0-9_]+)(:?-[^}]*)?\}")

_STRINGS = {"type": "array", "items": {"type": "string"}}
_SERVICE = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "image": {"type": "string", "pattern": r"^[a-z0-9./_-]+:[A-Za-z0-9._${}:-]+$"},
        "build": {
            "type": "object",
            "additionalProperties": False,
            "required": ["context", "dockerfile"],
            "properties": {"context": {"type": "string"}, "dockerfile": {"type": "string"}},
        },
        "command": _STRINGS,
        "entrypoint": _STRINGS,
        "restart": {"enum": ["no", "always", "on-failure", "unless-stopped"]},
        "environment": {"type": "object", "additionalProperties": {"type": ["string", "null"]}},
        "ports": {"type": "array", "items": {"type": "string", "pattern": r"^127\.0\.0\.1:\d+:\d+$"}},
        "volumes": {"type": "array", "items": {"type": "string"}},
        "profiles": _STRINGS,
        "depends_on": {
            "oneOf": [
                _STRINGS,
                {
                    "type": "object",
                    "additionalProperties": {
                        "type": "object",
                        "properties": {
                            "condition": {
                                "enum": ["service_started", "service_healthy", "service_completed_successfully"]
                            }
                        },
                        "required": ["condition"],
                    },
                },
            ]
        },
        "healthcheck": {
            "type": "object",
            "additionalProperties": False,
            "required": ["test"],
            "properties": {
                "test": {"type": "array", "items": {"type": "string"}, "minItems": 2},
                "interval": {"type": "string"},
                "timeout": {"type": "string"},
                "retries": {"type": "integer"},
            },
        },
    },
    "required": ["restart"],
    "anyOf": [{"required": ["image"]}, {"required": ["build"]}],
}
SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "patternProperties": {"^x-": {}},
    "properties": {
        "name": {"type": "string"},
        "services": {"type": "object", "additionalProperties": _SERVICE},
        "volumes": {"type": "object"},
    },
    "required": ["services"],
}


def test_compose_file_matches_the_schema():
    jsonschema.validate(COMPOSE, SCHEMA)
    assert set(COMPOSE["services"]) >= {
        "minio", "minio-init", "postgres", "trino", "dagster-code", "dagster-webserver", "dagster-daemon",
        "spark-master", "spark-worker",
    }  # fmt: skip
    assert {s for s, d in COMPOSE["services"].items() if "spark" in d.get("profiles", [])} == {
        "spark-master",
        "spark-worker",
    }


def test_images_are_pinned_and_dependencies_exist():
    services = COMPOSE["services"]
    for name, service in services.items():
        image = service.get("image", "")
        assert not image.endswith(":latest"), f"{name}: pin the image version"
        deps = service.get("depends_on", [])
        for dep in deps:  # a list, or a mapping of service -> condition
            assert dep in services, f"{name} depends on unknown service {dep}"
    assert services["trino"]["depends_on"]["minio-init"]["condition"] == "service_completed_successfully"


def test_every_variable_is_in_env_example_and_no_secret_is_inline():
    text = (DEPLOY / "compose.yaml").read_text()
    used = {m.group(1) for m in VARIABLE.finditer(text) if not m.group(2)}
    assert used <= set(ENV_EXAMPLE), f"missing from .env.example: {sorted(used - set(ENV_EXAMPLE))}"
    for key, value in ENV_EXAMPLE.items():
        if any(word in key for word in ("PASSWORD", "SECRET")):
            assert value.startswith("change-me"), f".env.example: {key} must be a placeholder"
    assert "deploy/.env" in (PROJECT_ROOT / ".gitignore").read_text().split()


def rendered_environment(service: str) -> dict[str, str]:
    """A service's environment with .env.example substituted, as compose would hand it over."""

    def substitute(value: str) -> str:
        return VARIABLE.sub(lambda m: ENV_EXAMPLE.get(m.group(1)) or (m.group(2) or ":-")[2:], value)

    return {k: substitute(str(v)) for k, v in COMPOSE["services"][service]["environment"].items()}


def test_the_code_location_environment_is_valid_for_lakehouse_settings():
    from lakehouse.settings import get_settings

    env = rendered_environment("dagster-code")
    known = set(re.findall(r"LAKEHOUSE_[A-Z0-9_]+", (PROJECT_ROOT / "lakehouse" / "settings.py").read_text()))
    assert {k for k in env if k.startswith("LAKEHOUSE_")} <= known, "compose sets a variable settings do not read"
    settings = get_settings(env)
    assert settings.warehouse == "s3://lakehouse/warehouse" and settings.landing == "s3://lakehouse/landing"
    assert settings.table_format == "iceberg" and settings.catalog_uri.startswith("postgresql+psycopg2://")
    assert settings.s3.endpoint == "http://minio:9000" and settings.s3.allow_http and settings.s3.path_style
    assert settings.trino_url == "https://lakehouse@trino:8443" and settings.spark_master is None
    assert settings.trino_ca_file == "/opt/dagster/trino-generated/trino/tls/ca.pem"
    assert env["DAGSTER_POSTGRES_URL"].startswith("postgresql+psycopg2://") and env["DAGSTER_POSTGRES_URL"].endswith(
        "/dagster"
    )
    assert rendered_environment("dagster-webserver") == env == rendered_environment("dagster-daemon")


def test_trino_gets_every_variable_its_catalogs_read():
    env = rendered_environment("trino")
    for path in [*(DEPLOY / "trino" / "catalog").glob("*.properties"), DEPLOY / "trino" / "config.properties"]:
        for name in re.findall(r"\$\{ENV:([A-Z0-9_]+)\}", path.read_text()):
            assert name in env, f"{path.name} reads {name}, which the trino service does not set"
    mounts = {v.split(":")[0] for v in COMPOSE["services"]["trino"]["volumes"]}
    assert "./trino/catalog" in mounts


def trino_mounts(service: str = "trino") -> dict[str, str]:
    """Mount target -> source of a service's volumes."""
    out = {}
    for volume in COMPOSE["services"][service]["volumes"]:
        parts = volume.split(":")
        out[parts[1]] = parts[0]
    return out


def test_trino_loads_the_access_control_and_the_committed_rules_hold_no_key():
    """The roles are enforced only if Trino loads the rules; a rules file with a hash key in it
    (or a ${...} placeholder, which Trino does not expand: a public key) makes every hashed id
    reversible by enumerating ids. The deployed rules are generated (trino-init) and read the key
    from Trino's memory (trino-key), so no file holds it."""
    mounts = trino_mounts()
    for target in (
        "/etc/trino/access-control.properties",
        "/etc/trino/group-provider.properties",
        "/etc/trino/access-control/groups.txt",
        "/etc/trino/password-authenticator.properties",
    ):
        assert target in mounts, f"the trino service does not mount {target}"
    # the generated rules, password file and certificate: one volume, written by trino-init first
    assert mounts["/etc/trino/generated"] == "trino-generated" and "trino-generated" in COMPOSE["volumes"]
    assert trino_mounts("trino-init")["/opt/dagster/lakehouse"] == "trino-generated"
    assert COMPOSE["services"]["trino"]["depends_on"]["trino-init"]["condition"] == "service_completed_successfully"
    init = " ".join(COMPOSE["services"]["trino-init"]["command"])
    assert "lakehouse trino server-files --output /opt/dagster/lakehouse/trino" in init
    assert "lakehouse trino rules --output /opt/dagster/lakehouse/trino/rules.json" in init
    assert "--host trino" in init  # the name the code location connects to
    properties = (DEPLOY / "trino" / "access-control" / "access-control.properties").read_text()
    assert "security.config-file=/etc/trino/generated/trino/rules.json" in properties
    rules = (DEPLOY / "trino" / "access-control" / "rules.json").read_text()
    assert "hmac" not in rules and "${" not in rules
    assert '"mask"' in rules  # personal columns are still masked (hidden) for analysts
    # the key: loaded into Trino's memory once it answers, from the environment only
    key = COMPOSE["services"]["trino-key"]
    assert key["command"] == ["lakehouse", "trino", "load-key"]
    assert key["depends_on"]["trino"]["condition"] == "service_healthy"
    assert key["environment"]["LAKEHOUSE_MASKING_KEY"].startswith("${LAKEHOUSE_MASKING_KEY")
    catalog = (DEPLOY / "trino" / "catalog" / "lakehouse_secrets.properties").read_text()
    assert "connector.name=memory" in catalog


def test_trino_takes_clients_only_over_https_with_a_password():
    config = dict(
        line.split("=", 1)
        for line in (DEPLOY / "trino" / "config.properties").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    )
    assert config["http-server.https.enabled"] == "true" and config["http-server.https.port"] == "8443"
    assert config["http-server.authentication.type"] == "PASSWORD"
    assert config["http-server.https.keystore.path"] == "/etc/trino/generated/trino/tls/server.pem"
    assert config["internal-communication.shared-secret"] == "${ENV:LAKEHOUSE_TRINO_SHARED_SECRET}"
    assert "http-server.authentication.allow-insecure-over-http" not in config  # HTTP authenticates nobody
    authenticator = (DEPLOY / "trino" / "password-authenticator.properties").read_text()
    assert "password-authenticator.name=file" in authenticator
    assert "file.password-file=/etc/trino/generated/trino/password.db" in authenticator
    # only the HTTPS port is published; the HTTP one serves the health check inside the network
    assert COMPOSE["services"]["trino"]["ports"] == ["127.0.0.1:8443:8443"]
    # passwords and the shared secret come from deploy/.env, required (compose stops without them)
    env = {**COMPOSE["services"]["trino-init"]["environment"], **COMPOSE["services"]["trino"]["environment"]}
    for name in (
        "LAKEHOUSE_TRINO_PASSWORD",
        "LAKEHOUSE_TRINO_PASSWORD_ANALYST",
        "LAKEHOUSE_TRINO_PASSWORD_STEWARD",
        "LAKEHOUSE_TRINO_SHARED_SECRET",
    ):
        assert env[name].startswith("${" + name + ":?"), name
    code = rendered_environment("dagster-code")
    assert code["LAKEHOUSE_TRINO_PASSWORD"].startswith("${LAKEHOUSE_TRINO_PASSWORD:?")
    assert trino_mounts("dagster-code")["/opt/dagster/trino-generated"] == "trino-generated"


def test_referenced_files_exist():
    for name, service in COMPOSE["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), f"{name}: {source} does not exist"
        if "build" in service:
            context = (DEPLOY / service["build"]["context"]).resolve()
            assert context == PROJECT_ROOT and (context / service["build"]["dockerfile"]).is_file()


def test_dockerfile_copies_what_exists_and_runs_our_definitions():
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert dockerfile.startswith("#") and re.search(r"^FROM python:3\.11-slim", dockerfile, re.M)
    for source in re.findall(r"^COPY (\S+) ", dockerfile, re.M):
        assert (PROJECT_ROOT / source).exists(), f"COPY {source}: not in the project"
    ignored = (DEPLOY / "Dockerfile.dockerignore").read_text().split()
    for source in re.findall(r"^COPY (\S+) ", dockerfile, re.M):
        assert f"!{source}" in ignored or f"!{source}/" in ignored, f"{source} is excluded from the build context"
    assert re.search(r"^USER lakehouse$", dockerfile, re.M), "the image must not run as root"
    command = COMPOSE["services"]["dagster-code"]["command"]
    module = command[command.index("-m") + 1]
    attribute = command[command.index("-a") + 1]
    assert hasattr(__import__(module, fromlist=[attribute]), attribute)
    workspace = yaml.safe_load((DEPLOY / "workspace.yaml").read_text())["load_from"][0]["grpc_server"]
    assert workspace["host"] == "dagster-code" and str(workspace["port"]) == command[command.index("-p") + 1]


def test_the_bucket_policy_is_least_privilege_and_never_public():
    policy = json.loads((DEPLOY / "minio" / "lakehouse-policy.json").read_text())
    for statement in policy["Statement"]:
        assert statement["Effect"] == "Allow"
        assert all(a.startswith("s3:") and "*" not in a for a in statement["Action"])
        assert all(r.startswith("arn:aws:s3:::${LAKEHOUSE_BUCKET}") for r in statement["Resource"])
    actions = {a for s in policy["Statement"] for a in s["Action"]}
    assert not actions & {"s3:DeleteBucket", "s3:PutBucketPolicy", "s3:CreateBucket"}
    script = (DEPLOY / "minio" / "init.sh").read_text()
    assert 'mc anonymous set none "local/$LAKEHOUSE_BUCKET"' in script
    assert "public" not in script and "download" not in script


def test_the_deployed_instance_keeps_secrets_in_the_environment():
    instance = yaml.safe_load((DEPLOY / "dagster.yaml").read_text())
    assert instance["storage"]["postgres"]["postgres_url"] == {"env": "DAGSTER_POSTGRES_URL"}
    assert "password" not in (DEPLOY / "dagster.yaml").read_text().lower().replace("user:password", "")


def compose_v2() -> bool:
    if not shutil.which("docker"):
        return False
    return subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0


@pytest.mark.skipif(not compose_v2() and not shutil.which("docker-compose"), reason="no compose CLI installed")
def test_the_compose_cli_accepts_the_file(tmp_path):
    """`config` needs no engine. Compose v1 (docker-compose) predates the top-level `name` key."""
    env = tmp_path / ".env"
    env.write_text((DEPLOY / ".env.example").read_text())
    v2 = compose_v2()
    if v2:
        cmd = ["docker", "compose", "-f", str(DEPLOY / "compose.yaml")]
    else:
        copy = DEPLOY / f".compose-v1-{tmp_path.name}.yaml"
        copy.write_text((DEPLOY / "compose.yaml").read_text().replace("\nname: lakehouse\n", "\n"))
        cmd = ["docker-compose", "-f", str(copy)]
    try:
        result = subprocess.run(
            [*cmd, "--env-file", str(env), "--profile", "spark", "config", "-q"],
            cwd=DEPLOY, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    finally:
        if not v2:
            copy.unlink()
    assert result.returncode == 0, result.stderr


def test_the_deployed_instance_frees_slots_and_monitors_runs_like_the_embedded_one(tmp_path):
    """The scaled-out instance runs the same asset graph with the same one-writer-per-table pools, so
    it needs every setting the embedded one has for the same reason: above all
    ``free_slots_after_run_end_seconds``, without which a killed run worker keeps its pool slots and
    every later writer of its tables waits forever. Only the number of concurrent runs may differ."""
    from dagster._core.instance.config import dagster_instance_config

    embedded = yaml.safe_load((PROJECT_ROOT / "dagster.yaml").read_text())
    deployed = yaml.safe_load((DEPLOY / "dagster.yaml").read_text())
    assert deployed["run_monitoring"] == embedded["run_monitoring"]
    assert deployed["run_monitoring"]["free_slots_after_run_end_seconds"] > 0
    assert deployed["run_retries"] == embedded["run_retries"]
    assert deployed["concurrency"]["pools"] == embedded["concurrency"]["pools"] == {"default_limit": 1}
    assert set(deployed["concurrency"]) == set(embedded["concurrency"])
    assert set(deployed["concurrency"]["runs"]) == set(embedded["concurrency"]["runs"])
    # both files are valid instance configuration for the installed Dagster (a misplaced key fails here)
    for name, source in (("embedded", PROJECT_ROOT / "dagster.yaml"), ("deployed", DEPLOY / "dagster.yaml")):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "dagster.yaml").write_text(source.read_text())
        config, _ = dagster_instance_config(str(folder))
        assert config["run_monitoring"] == embedded["run_monitoring"], name
