"""Where moto differs from the cloud it stands in for, and drkit depends on the
cloud's behaviour: fixed here, applied by the lab's control plane (moto_server)
and by unit tests that run moto in-process.

- Secrets Manager: moving AWSCURRENT with UpdateSecretVersionStage (the rotation
  protocol's last step) leaves moto's default version on the old one, so
  GetSecretValue without a stage kept answering the old value (moto 5.2.1). AWS
  answers the version that holds AWSCURRENT.
- EC2 DeleteLaunchTemplate by id of a template that is gone: moto answers
  InvalidLaunchTemplateName.NotFoundException, AWS InvalidLaunchTemplateId.NotFound,
  which the AWS provider takes as "deleted already". A delete retried after a
  lost answer (a CI run's scratch-host destroy, under load) failed on moto's code.
"""

from __future__ import annotations

from typing import Any

_APPLIED = False


def apply() -> None:
    """Patch moto's backends once (idempotent)."""
    global _APPLIED
    if _APPLIED:
        return
    from moto.secretsmanager.models import SecretsManagerBackend

    original = SecretsManagerBackend.update_secret_version_stage

    def update_secret_version_stage(self: Any, secret_id: str, version_stage: str,
                                    remove_from_version_id: str,
                                    move_to_version_id: str) -> tuple[str, str]:
        result = original(self, secret_id, version_stage, remove_from_version_id,
                          move_to_version_id)
        if version_stage == "AWSCURRENT" and move_to_version_id:
            self.secrets[secret_id].default_version_id = move_to_version_id
        return result

    SecretsManagerBackend.update_secret_version_stage = update_secret_version_stage
    _delete_launch_template_by_id_not_found()
    _APPLIED = True


def _delete_launch_template_by_id_not_found() -> None:
    from moto.ec2.exceptions import InvalidLaunchTemplateIdNotFound
    from moto.ec2.models.launch_templates import LaunchTemplateBackend

    original = LaunchTemplateBackend.delete_launch_template

    def delete_launch_template(self: Any, name: str, tid: str | None) -> Any:
        if not name and tid and tid not in self.launch_templates:
            raise InvalidLaunchTemplateIdNotFound(tid)
        return original(self, name, tid)

    LaunchTemplateBackend.delete_launch_template = delete_launch_template
