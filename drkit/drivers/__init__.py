"""Drivers run the external tools (Terraform, Ansible) and return DriverResults.

They never raise on a failed tool run: the engine decides what a failure means.
"""

from drkit.drivers.result import DriverResult

__all__ = ["DriverResult"]
