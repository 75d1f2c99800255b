variable "name" {
  description = "Logical name of the region in the estate (e.g. us-east). Used in resource names and the DrRegion tag, so runbooks can address a region without knowing its cloud region."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,30}[a-z0-9]$", var.name))
    error_message = "name must be 2-32 characters of lowercase letters, digits and dashes, starting with a letter (e.g. us-east)."
  }
}

variable "estate" {
  description = "Name of the estate this region belongs to (the Estate tag and the prefix of every resource name), e.g. lab or prod."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,20}[a-z0-9]$", var.estate))
    error_message = "estate must be 2-22 characters of lowercase letters, digits and dashes, starting with a letter."
  }
}

variable "role" {
  description = "DR role of the region: primary (serves writes), hot-standby (streaming replica, ready to take over) or warm-standby (replica, scaled up only when needed)."
  type        = string

  validation {
    condition     = contains(["primary", "hot-standby", "warm-standby"], var.role)
    error_message = "role must be one of primary, hot-standby, warm-standby."
  }
}

variable "vpc_cidr" {
  description = "IPv4 CIDR of the region's VPC, at most a /20 (e.g. 10.10.0.0/16). Subnets are carved from it as /24s: the n-th zone (from 1) gets 10.<r>.<n>.0/24."
  type        = string

  validation {
    condition     = can(cidrhost(var.vpc_cidr, 0)) && can(regex("^\\d+\\.\\d+\\.\\d+\\.\\d+/\\d+$", var.vpc_cidr))
    error_message = "vpc_cidr must be an IPv4 CIDR such as 10.10.0.0/16."
  }

  validation {
    condition     = can(cidrhost(var.vpc_cidr, 0)) && try(tonumber(split("/", var.vpc_cidr)[1]) >= 16 && tonumber(split("/", var.vpc_cidr)[1]) <= 20, false)
    error_message = "vpc_cidr prefix length must be between /16 (the largest VPC AWS allows) and /20 (room for /24 subnets)."
  }

  validation {
    condition     = can(cidrhost(var.vpc_cidr, 0)) && try(cidrhost(var.vpc_cidr, 0) == split("/", var.vpc_cidr)[0], false)
    error_message = "vpc_cidr must be a network address (no host bits set), e.g. 10.10.0.0/16 not 10.10.1.0/16."
  }
}

variable "enable_dns_hostnames" {
  description = "Give instances DNS host names and let the VPC resolve Route53 private zones (AWS needs this for a private hosted zone). An estate with its own resolver may turn it off: the provider waits a fixed ~10 s after setting it."
  type        = bool
  default     = true
}

variable "zones" {
  description = "Availability zones of the region, in order; zone i (from 0) gets subnet cidrsubnet(vpc_cidr, 24 - prefix, i + 1). Every zone must belong to the provider's region (checked at plan time)."
  type        = list(string)

  validation {
    condition     = length(var.zones) >= 1 && length(var.zones) <= 6
    error_message = "zones must list between 1 and 6 availability zones."
  }

  validation {
    condition     = alltrue([for z in var.zones : can(regex("^[a-z]{2}(-[a-z]+)+-[0-9][a-z]$", z))])
    error_message = "each zone must be an availability zone name such as us-east-1a."
  }

  validation {
    condition     = length(distinct(var.zones)) == length(var.zones)
    error_message = "zones must not repeat."
  }
}

variable "capacity" {
  description = "Number of instances per role. Each Auto Scaling group runs exactly this many (min = max = desired); a failover scales a region by changing it."
  type = object({
    db  = number
    app = number
  })

  validation {
    condition     = alltrue([for n in values(var.capacity) : n >= 0 && floor(n) == n])
    error_message = "capacity.db and capacity.app must be whole numbers >= 0."
  }

  validation {
    condition     = alltrue([for n in values(var.capacity) : n <= 48])
    error_message = "capacity.db and capacity.app must be at most 48 (a guard against a typo; raise the limit in the module if an estate really needs more)."
  }
}

variable "instance_type" {
  description = "EC2 instance type for both roles."
  type        = string
  default     = "t3.micro"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]*\\.[a-z0-9]+$", var.instance_type))
    error_message = "instance_type must look like t3.micro."
  }
}

variable "ami_id" {
  description = "AMI the launch templates boot (AMI ids are per cloud region)."
  type        = string

  validation {
    condition     = can(regex("^ami-([0-9a-f]{8}|[0-9a-f]{17})$", var.ami_id))
    error_message = "ami_id must be an AMI id such as ami-0123456789abcdef0."
  }
}

variable "allowed_cidrs" {
  description = "IPv4 CIDRs allowed to reach the hosts on ssh (22), PostgreSQL (5432) and the app (8080): the other regions' VPCs (replication) and the operators' network."
  type        = list(string)

  validation {
    condition     = length(var.allowed_cidrs) > 0 && alltrue([for c in var.allowed_cidrs : can(cidrhost(c, 0))])
    error_message = "allowed_cidrs must be a non-empty list of IPv4 CIDRs."
  }

  validation {
    condition     = !contains(var.allowed_cidrs, "0.0.0.0/0")
    error_message = "allowed_cidrs must not contain 0.0.0.0/0: database and ssh ports are never open to the world."
  }
}

variable "zones_out" {
  description = "Zones shifted away (RB-DR-002 zone failover): their app groups run no host and the region's app capacity is spread over its other zones. Database groups are left as they are."
  type        = list(string)
  default     = []
  nullable    = false

  validation {
    condition     = alltrue([for z in var.zones_out : contains(var.zones, z)]) && length(setsubtract(var.zones, var.zones_out)) > 0
    error_message = "zones_out must name zones of the region and leave at least one zone in."
  }
}

variable "restore_host" {
  description = "A scratch host to restore this region's backups into (RB-DR-006), or null for none. run_id names the drkit run that owns it (its RestoreRun tag; a new run id replaces the host); zone is one of zones (null: the first). Setting it back to null destroys the host."
  type = object({
    run_id = string
    zone   = optional(string)
  })
  default = null
}

variable "db_username" {
  description = "Database user the application connects as; stored in the region's database-credentials secret."
  type        = string
  default     = "drkit"

  validation {
    condition     = can(regex("^[a-z_][a-z0-9_]{0,62}$", var.db_username))
    error_message = "db_username must be a PostgreSQL identifier: lowercase letters, digits and underscores, not starting with a digit."
  }
}

variable "db_name" {
  description = "Database name; stored in the database-credentials secret."
  type        = string
  default     = "drkit"

  validation {
    condition     = can(regex("^[a-z_][a-z0-9_]{0,62}$", var.db_name))
    error_message = "db_name must be a PostgreSQL identifier."
  }
}

variable "db_password" {
  description = "Database password written to the database-credentials secret. Ephemeral: never stored in plan or state. Pass the same value to every region (a replica has the primary's users), e.g. from one ephemeral aws_secretsmanager_random_password in the root module."
  type        = string
  sensitive   = true
  ephemeral   = true

  validation {
    condition     = length(var.db_password) >= 16
    error_message = "db_password must be at least 16 characters."
  }
}

variable "app_secret" {
  description = "Application secret (e.g. session signing key) written to the application secret. Ephemeral: never stored in plan or state. Pass the same value to every region so sessions survive a failover."
  type        = string
  sensitive   = true
  ephemeral   = true

  validation {
    condition     = length(var.app_secret) >= 32
    error_message = "app_secret must be at least 32 characters."
  }
}

variable "secret_version" {
  description = "Version of the secret values. Write-only secrets are sent to Secrets Manager only when this number changes: bump it to rotate db_password and app_secret."
  type        = number
  default     = 1

  validation {
    condition     = var.secret_version >= 1 && floor(var.secret_version) == var.secret_version
    error_message = "secret_version must be a whole number >= 1."
  }
}

variable "secret_recovery_window_days" {
  description = "Days Secrets Manager keeps a deleted secret recoverable: 0 (delete at once, for scratch estates that are rebuilt under the same names) or 7-30."
  type        = number
  default     = 30

  validation {
    condition     = var.secret_recovery_window_days == 0 || (var.secret_recovery_window_days >= 7 && var.secret_recovery_window_days <= 30)
    error_message = "secret_recovery_window_days must be 0 or between 7 and 30."
  }
}

variable "kms_deletion_window_days" {
  description = "Days before a destroyed KMS key is really deleted (7-30). Data encrypted with it is unreadable afterwards."
  type        = number
  default     = 30

  validation {
    condition     = var.kms_deletion_window_days >= 7 && var.kms_deletion_window_days <= 30
    error_message = "kms_deletion_window_days must be between 7 and 30."
  }
}

variable "backup_bucket_name" {
  description = "Name of the region's versioned backup bucket (WAL archive, base backups, config). Null: <estate>-<name>-backups. S3 names are global: real estates usually add the account id."
  type        = string
  default     = null

  validation {
    condition     = var.backup_bucket_name == null || can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.backup_bucket_name))
    error_message = "backup_bucket_name must be a valid S3 bucket name (3-63 lowercase letters, digits, dots, dashes)."
  }
}

variable "backup_bucket_force_destroy" {
  description = "Let terraform destroy the backup bucket while it still holds objects. Only for scratch estates: a production backup bucket must survive a mistaken destroy."
  type        = bool
  default     = false
}

variable "tags" {
  description = "Tags added to every resource (the module adds Estate, DrRegion and DrRole; instances also get Name and Role)."
  type        = map(string)
  default     = {}
}
