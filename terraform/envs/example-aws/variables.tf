variable "estate" {
  description = "Estate name: the Estate tag and the prefix of every resource name."
  type        = string
  default     = "prod"
}

variable "control_region" {
  description = "Cloud region that is never failed over (state backend, lock table, generated secret values). Must not be one of the estate's regions."
  type        = string
  default     = "us-west-2"
}

variable "capacity" {
  description = "Instances per role and logical region: the steady state."
  type = map(object({
    db  = number
    app = number
  }))
  # One database node per region: the site playbook (db-roles.yml) expects exactly
  # that until the in-region standby of issue 14 lands
  # (docs/design/two-zone-topology.md); db = 2 in us-east failed the site before.
  default = {
    us-east  = { db = 1, app = 3 }
    eu-west  = { db = 1, app = 1 }
    ap-south = { db = 1, app = 0 }
  }

  validation {
    condition     = toset(keys(var.capacity)) == toset(["us-east", "eu-west", "ap-south"])
    error_message = "capacity must have exactly the keys us-east, eu-west, ap-south."
  }
}

variable "capacity_overrides" {
  description = "Per-region changes over capacity, e.g. { \"eu-west\" = { app = 3 } } during a failover."
  type = map(object({
    db  = optional(number)
    app = optional(number)
  }))
  default = {}

  validation {
    condition     = alltrue([for r in keys(var.capacity_overrides) : contains(["us-east", "eu-west", "ap-south"], r)])
    error_message = "capacity_overrides keys must be among us-east, eu-west, ap-south."
  }
}

variable "zones_out" {
  description = "Zones shifted away, by logical region (RB-DR-002 zone failover): { \"us-east\" = [\"us-east-1a\"] }. Their app groups run no host; the region's app capacity goes to its other zones. A region left out has none: an apply without this variable brings every zone back."
  type        = map(list(string))
  default     = {}
  nullable    = false

  validation {
    condition     = alltrue([for r in keys(var.zones_out) : contains(["us-east", "eu-west", "ap-south"], r)])
    error_message = "zones_out keys must be among us-east, eu-west, ap-south."
  }
}

variable "restore_hosts" {
  description = "Restore hosts to run, by logical region: { \"eu-west\" = { run_id = \"<drkit run id>\" } } (RB-DR-006), with an optional zone of that region (default its first). A region left out has none: an apply without this variable destroys any restore host."
  type = map(object({
    run_id = string
    zone   = optional(string)
  }))
  default  = {}
  nullable = false

  validation {
    condition     = alltrue([for r in keys(var.restore_hosts) : contains(["us-east", "eu-west", "ap-south"], r)])
    error_message = "restore_hosts keys must be among us-east, eu-west, ap-south."
  }
}

variable "ami_ids" {
  description = "Hardened AMI per logical region (AMI ids are per cloud region)."
  type        = map(string)

  validation {
    condition     = toset(keys(var.ami_ids)) == toset(["us-east", "eu-west", "ap-south"])
    error_message = "ami_ids must have exactly the keys us-east, eu-west, ap-south."
  }
}

variable "instance_type" {
  description = "EC2 instance type for every host."
  type        = string
  default     = "m6i.large"
}

variable "operator_cidrs" {
  description = "Bastion and control-node networks allowed to reach the hosts (ssh, PostgreSQL, app)."
  type        = list(string)
}

variable "secret_version" {
  description = "Bump to write newly generated database and application secrets to every region (rotation)."
  type        = number
  default     = 1
}
