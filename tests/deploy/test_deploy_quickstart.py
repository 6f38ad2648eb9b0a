"""The quickstart sample runs on any NVIDIA GPU cluster as is: public pinned image, no PVC, fp16."""

from __future__ import annotations

import yaml
from deploy_support import MANIFESTS

SAMPLES = MANIFESTS / "samples"


def _objects() -> list[dict]:
    kustomization = yaml.safe_load((SAMPLES / "kustomization.yaml").read_text())
    return [yaml.safe_load((SAMPLES / r).read_text()) for r in kustomization["resources"]]


def test_samples_kustomization_holds_only_self_contained_aijobs() -> None:
    objects = _objects()
    assert objects and all(o["kind"] == "AIJob" for o in objects)
    for obj in objects:
        pod = obj["spec"]["template"]["spec"]
        assert all("persistentVolumeClaim" not in v for v in pod.get("volumes", [])), "no PVC"
        for c in pod["containers"]:
            image = c["image"]
            assert ":" in image and not image.endswith(":latest"), image
            assert "/" in image and not image.startswith(("localhost", "127.")), "a public registry image"
            assert not [e for e in c.get("env", []) if "TOKEN" in e["name"]], (
                "no credentials (no gated weights)"
            )
        # fp16: bf16 does not run on V100 or T4
        assert obj["spec"]["workload"]["precision"] == "fp16"
        assert obj["spec"]["placement"]["mode"] == "steer"  # the operator creates and mirrors the Job


def test_quickstart_model_is_the_catalog_model_it_serves() -> None:
    from energaizer.catalog import get_model

    (obj,) = _objects()
    model = get_model(obj["spec"]["workload"]["model"])
    script = " ".join(obj["spec"]["template"]["spec"]["containers"][0]["args"])
    served = model.hf_id.split("/")[-1]
    assert f"{model.hf_id.split('/')[0]}/{served}-Instruct" in script or model.hf_id in script
