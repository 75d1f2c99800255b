"""Ansible plugins drkit's ansible driver adds to every playbook it runs."""
