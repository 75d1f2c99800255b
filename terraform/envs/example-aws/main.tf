# An example production estate: the same three logical regions as the lab, from
# the same module, on AWS itself. Validated in CI, never applied from here.

data "aws_caller_identity" "current" {
  provider = aws.control
}

locals {
  regions = {
    us-east  = { cloud_region = "us-east-1", role = "primary", vpc_cidr = "10.10.0.0/16", zones = ["us-east-1a", "us-east-1b", "us-east-1c"] }
    eu-west  = { cloud_region = "eu-west-1", role = "hot-standby", vpc_cidr = "10.20.0.0/16", zones = ["eu-west-1a", "eu-west-1b", "eu-west-1c"] }
    ap-south = { cloud_region = "ap-south-1", role = "warm-standby", vpc_cidr = "10.30.0.0/16", zones = ["ap-south-1a", "ap-south-1b"] }
  }

  capacity = {
    for name, base in var.capacity : name => {
      db  = coalesce(try(var.capacity_overrides[name].db, null), base.db)
      app = coalesce(try(var.capacity_overrides[name].app, null), base.app)
    }
  }

  allowed_cidrs = concat([for r in local.regions : r.vpc_cidr], var.operator_cidrs)
  # S3 names are global: the account id keeps them unique.
  account_id = data.aws_caller_identity.current.account_id
  tags       = { ManagedBy = "terraform", Runbooks = "drkit" }
}

provider "aws" {
  alias  = "control"
  region = var.control_region
}

provider "aws" {
  alias  = "us-east"
  region = local.regions["us-east"].cloud_region
}

provider "aws" {
  alias  = "eu-west"
  region = local.regions["eu-west"].cloud_region
}

provider "aws" {
  alias  = "ap-south"
  region = local.regions["ap-south"].cloud_region
}

# Generated in the control region: a plan never needs the failed region's API.
ephemeral "aws_secretsmanager_random_password" "db" {
  provider            = aws.control
  password_length     = 32
  exclude_punctuation = true
}

ephemeral "aws_secretsmanager_random_password" "app" {
  provider            = aws.control
  password_length     = 64
  exclude_punctuation = true
}

module "us-east" {
  source    = "../../modules/region"
  providers = { aws = aws.us-east }

  name               = "us-east"
  estate             = var.estate
  role               = local.regions["us-east"].role
  vpc_cidr           = local.regions["us-east"].vpc_cidr
  zones              = local.regions["us-east"].zones
  capacity           = local.capacity["us-east"]
  ami_id             = var.ami_ids["us-east"]
  restore_host       = try(var.restore_hosts["us-east"], null)
  zones_out          = try(var.zones_out["us-east"], [])
  instance_type      = var.instance_type
  allowed_cidrs      = local.allowed_cidrs
  backup_bucket_name = "${var.estate}-us-east-backups-${local.account_id}"
  db_password        = ephemeral.aws_secretsmanager_random_password.db.random_password
  app_secret         = ephemeral.aws_secretsmanager_random_password.app.random_password
  secret_version     = var.secret_version
  tags               = local.tags
}

module "eu-west" {
  source    = "../../modules/region"
  providers = { aws = aws.eu-west }

  name               = "eu-west"
  estate             = var.estate
  role               = local.regions["eu-west"].role
  vpc_cidr           = local.regions["eu-west"].vpc_cidr
  zones              = local.regions["eu-west"].zones
  capacity           = local.capacity["eu-west"]
  ami_id             = var.ami_ids["eu-west"]
  restore_host       = try(var.restore_hosts["eu-west"], null)
  zones_out          = try(var.zones_out["eu-west"], [])
  instance_type      = var.instance_type
  allowed_cidrs      = local.allowed_cidrs
  backup_bucket_name = "${var.estate}-eu-west-backups-${local.account_id}"
  db_password        = ephemeral.aws_secretsmanager_random_password.db.random_password
  app_secret         = ephemeral.aws_secretsmanager_random_password.app.random_password
  secret_version     = var.secret_version
  tags               = local.tags
}

module "ap-south" {
  source    = "../../modules/region"
  providers = { aws = aws.ap-south }

  name               = "ap-south"
  estate             = var.estate
  role               = local.regions["ap-south"].role
  vpc_cidr           = local.regions["ap-south"].vpc_cidr
  zones              = local.regions["ap-south"].zones
  capacity           = local.capacity["ap-south"]
  ami_id             = var.ami_ids["ap-south"]
  restore_host       = try(var.restore_hosts["ap-south"], null)
  zones_out          = try(var.zones_out["ap-south"], [])
  instance_type      = var.instance_type
  allowed_cidrs      = local.allowed_cidrs
  backup_bucket_name = "${var.estate}-ap-south-backups-${local.account_id}"
  db_password        = ephemeral.aws_secretsmanager_random_password.db.random_password
  app_secret         = ephemeral.aws_secretsmanager_random_password.app.random_password
  secret_version     = var.secret_version
  tags               = local.tags
}

check "control_region_is_not_an_estate_region" {
  assert {
    condition     = !contains([for r in local.regions : r.cloud_region], var.control_region)
    error_message = "control_region ${var.control_region} is one of the estate's regions: its failure would take the state backend with it."
  }
}
