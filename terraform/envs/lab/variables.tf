variable "estate" {
  description = "Estate name: the Estate tag and the prefix of every resource name."
  type        = string
  default     = "lab"
}

variable "control_region" {
  description = "Cloud region that is never failed over (state backend, lock table, generated secret values). Must not be one of the estate's regions."
  type        = string
  default     = "us-west-2"
}

variable "capacity" {
  description = "Instances per role and logical region: the baseline topology. A failover changes a region with capacity_overrides rather than restating the whole map."
  type = map(object({
    db  = number
    app = number
  }))

  validation {
    condition     = toset(keys(var.capacity)) == toset(["us-east", "eu-west", "ap-south"])
    error_message = "capacity must have exactly the keys us-east, eu-west, ap-south."
  }
}

variable "vpc_cidrs" {
  description = "VPC CIDR per logical region, replacing the seed topology's (10.10/10.20/10.30.0.0/16): a second estate beside this one (a rebuild rehearsal's scratch estate) must not share its networks."
  type        = map(string)
  default     = {}
  nullable    = false

  validation {
    condition     = alltrue([for name, cidr in var.vpc_cidrs : contains(["us-east", "eu-west", "ap-south"], name) && can(cidrnetmask(cidr))])
    error_message = "vpc_cidrs: keys are the estate's regions (us-east, eu-west, ap-south), values IPv4 CIDRs."
  }
}

variable "capacity_overrides" {
  description = "Per-region changes applied over capacity, e.g. { \"eu-west\" = { app = 2 } } during a failover. Unset fields keep the baseline."
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
  description = "AMI per logical region (AMI ids are per cloud region)."
  type        = map(string)

  validation {
    condition     = toset(keys(var.ami_ids)) == toset(["us-east", "eu-west", "ap-south"])
    error_message = "ami_ids must have exactly the keys us-east, eu-west, ap-south."
  }
}

variable "instance_type" {
  description = "EC2 instance type for every host."
  type        = string
  default     = "t3.micro"
}

variable "operator_cidrs" {
  description = "Where operators and the control node (Ansible, smoke tests) reach the hosts from; added to the VPC CIDRs in every region's security group."
  type        = list(string)
}

variable "aws_provider" {
  description = "Provider flags for API endpoints that are not AWS itself (e.g. a local emulator). The endpoint URL and credentials come from the environment (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, ...). All false for AWS."
  type = object({
    skip_credentials_validation = bool
    skip_requesting_account_id  = bool
    skip_metadata_api_check     = bool
    s3_use_path_style           = bool
  })
  default = {
    skip_credentials_validation = false
    skip_requesting_account_id  = false
    skip_metadata_api_check     = false
    s3_use_path_style           = false
  }
}

variable "enable_dns_hostnames" {
  description = "Passed to every region: VPC DNS host names / Route53 private zone resolution. Off where the estate runs its own resolver for the private zone."
  type        = bool
  default     = true
}

variable "scratch" {
  description = "A scratch estate that is rebuilt often: secrets are deleted at once, KMS keys after the minimum 7 days, and backup buckets are destroyed with their objects. Never true for an estate holding real data."
  type        = bool
  default     = false
}

variable "secret_version" {
  description = "Bump to write newly generated database and application secrets to every region (rotation)."
  type        = number
  default     = 1
}
