"""A private local stack for the fault suite: its own run dir and ports, so that stopping
its broker or its Milvus disturbs nothing else (a developer's `make up`, another test).

Started and stopped with the project's own scripts (stack/up.sh, stack/down.sh), which
take the parts to act on; Azurite gets an account of this run's own, with a fresh key.
"""

from __future__ import annotations

import base64
import os
import secrets
import subprocess
from dataclasses import dataclass
from pathlib import Path

from dedup.blob import BlobSettings
from dedup.settings import KafkaSettings, MilvusSettings

ROOT = Path(__file__).resolve().parents[2]
# Far from the stack's defaults (9092, 10000, 19530, 8000-8002, 9090).
PORTS = {
    "KAFKA": 29092,
    "KAFKA_CONTROLLER": 29093,
    "AZURITE": 20000,
    "MILVUS": 29530,
    "TRITON_HTTP": 28000,
    "TRITON_GRPC": 28001,
    "TRITON_METRICS": 28002,
    "PROMETHEUS": 29090,
}
ACCOUNT = "faultsaccount"
EMBEDDING_MODEL = "sscd_distilled"


@dataclass(frozen=True)
class PrivateStack:
    run_dir: Path
    account_key: str

    @classmethod
    def create(cls, run_dir: Path) -> PrivateStack:
        """The stack of `run_dir`, with the Azurite key it was (or will be) started with."""
        key_file = run_dir / "azurite-account-key"
        if not key_file.exists():
            run_dir.mkdir(parents=True, exist_ok=True)
            key_file.write_text(base64.b64encode(secrets.token_bytes(32)).decode())
            key_file.chmod(0o600)
        return cls(run_dir, key_file.read_text().strip())

    def running(self) -> bool:
        return self.script("status").returncode == 0

    @property
    def script_env(self) -> dict[str, str]:
        env = {f"DEDUP_STACK_{part}_PORT": str(port) for part, port in PORTS.items()}
        return (
            os.environ
            | env
            | {
                "DEDUP_RUN_DIR": str(self.run_dir),
                "DEDUP_STACK_TRITON_MODEL": EMBEDDING_MODEL,
                "AZURITE_ACCOUNTS": f"{ACCOUNT}:{self.account_key}",
            }
        )

    def script(self, name: str, *parts: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", f"stack/{name}.sh", *parts],
            cwd=ROOT,
            env=self.script_env,
            text=True,
            capture_output=True,
            check=False,
        )

    def up(self, *parts: str) -> None:
        done = self.script("up", *parts)
        if done.returncode != 0:
            raise RuntimeError(f"stack/up.sh {' '.join(parts)}:\n{done.stdout}\n{done.stderr}")

    def down(self, *parts: str) -> None:
        done = self.script("down", *parts)
        if done.returncode != 0:
            raise RuntimeError(f"stack/down.sh {' '.join(parts)}:\n{done.stdout}\n{done.stderr}")

    # ---- how the services reach it ------------------------------------------------------

    @property
    def blob_connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={self.account_key};"
            f"BlobEndpoint=http://127.0.0.1:{PORTS['AZURITE']}/{ACCOUNT};"
        )

    @property
    def kafka(self) -> KafkaSettings:
        return KafkaSettings(kafka_bootstrap_servers=f"127.0.0.1:{PORTS['KAFKA']}")

    @property
    def blob(self) -> BlobSettings:
        return BlobSettings(blob_connection_string=self.blob_connection_string)

    @property
    def milvus(self) -> MilvusSettings:
        return MilvusSettings(milvus_uri=f"http://127.0.0.1:{PORTS['MILVUS']}")

    def service_env(self, service: str, fields: set[str]) -> dict[str, str]:
        """DEDUP_<SERVICE>_* pointing a service (given its settings' field names) here."""
        values = {
            "kafka_bootstrap_servers": self.kafka.kafka_bootstrap_servers,
            "blob_connection_string": self.blob_connection_string,
            "milvus_uri": self.milvus.milvus_uri,
            "triton_url": f"127.0.0.1:{PORTS['TRITON_GRPC']}",
        }
        prefix = f"DEDUP_{service.upper()}_"
        return {prefix + name.upper(): value for name, value in values.items() if name in fields}
