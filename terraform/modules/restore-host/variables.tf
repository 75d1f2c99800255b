variable "estate" {
  description = "Name of the estate the host belongs to (the Estate tag and the prefix of its Name), e.g. lab or prod."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,20}[a-z0-9]$", var.estate))
    error_message = "estate must be 2-22 characters of lowercase letters, digits and dashes, starting with a letter."
  }
}

variable "dr_region" {
  description = "Logical name of the region the host restores in (the DrRegion tag, e.g. eu-west): the region whose backup repository it restores from."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,30}[a-z0-9]$", var.dr_region))
    error_message = "dr_region must be 2-32 characters of lowercase letters, digits and dashes, starting with a letter (e.g. eu-west)."
  }
}

variable "run_id" {
  description = "Id of the drkit run the host belongs to (the RestoreRun tag), e.g. 20250101T120000Z-RB-DR-006, so a later run can tell whose host it finds. A different run id replaces the host: every run restores into a fresh one."
  type        = string

  validation {
    condition     = var.run_id != null && can(regex("^[A-Za-z0-9][A-Za-z0-9_.:/=+@-]{0,127}$", var.run_id))
    error_message = "run_id must be 1-128 characters, starting with a letter or digit, of letters, digits and _ . : / = + @ - (no spaces: it is a tag value and is matched in filters)."
  }
}

variable "subnet_id" {
  description = "Subnet the host is placed in; it must lie in zone."
  type        = string

  validation {
    condition     = can(regex("^subnet-[0-9a-f]+$", var.subnet_id))
    error_message = "subnet_id must be a subnet id such as subnet-0123456789abcdef0."
  }
}

variable "zone" {
  description = "Availability zone of subnet_id (the host's placement, known at plan time; AWS refuses a mismatch)."
  type        = string

  validation {
    condition     = can(regex("^[a-z]{2}(-[a-z]+)+-[0-9][a-z]$", var.zone))
    error_message = "zone must be an availability zone name such as eu-west-1a."
  }
}

variable "security_group_ids" {
  description = "Security groups of the host: the region's hosts group, so it is reachable over ssh from the control node and reaches the backup bucket like the database hosts."
  type        = list(string)

  validation {
    condition     = length(var.security_group_ids) >= 1 && alltrue([for id in var.security_group_ids : can(regex("^sg-[0-9a-f]+$", id))])
    error_message = "security_group_ids must list at least one security group id such as sg-0123456789abcdef0."
  }
}

variable "ami_id" {
  description = "AMI the host boots: the region's database AMI, so the restore runs the same PostgreSQL and pgBackRest as production."
  type        = string

  validation {
    condition     = can(regex("^ami-([0-9a-f]{8}|[0-9a-f]{17})$", var.ami_id))
    error_message = "ami_id must be an AMI id such as ami-0123456789abcdef0."
  }
}

variable "instance_type" {
  description = "EC2 instance type of the host."
  type        = string
  default     = "t3.micro"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]*\\.[a-z0-9]+$", var.instance_type))
    error_message = "instance_type must look like t3.micro."
  }
}

variable "tags" {
  description = "Tags added to the host and its volumes. The module sets Name (<estate>-<dr_region>-restore), Role (restore), Estate, DrRegion and RestoreRun itself; those win over the same keys here."
  type        = map(string)
  default     = {}
}
