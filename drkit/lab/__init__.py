"""The lab: an embedded mini-cloud on one machine (docs/internals.md, "The lab").

A moto server is the control plane, a reconciler turns running EC2 instances
into network namespaces with sshd, a resolver answers the Route53 private zone,
and chaos cuts zones and regions. ``drkit.lab.controller`` brings it up and down.
"""
