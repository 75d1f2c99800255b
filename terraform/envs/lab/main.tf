# The lab estate: the seed topology of three regions, each from modules/region.
#
# Nothing here knows it runs against an emulator: endpoint and credentials come
# from the environment drkit sets from inventory/lab, provider flags from
# lab.auto.tfvars.

locals {
  # The estate's regions. Keep in step with inventory/lab/group_vars/all/drkit.yml.
  seed_regions = {
    us-east  = { cloud_region = "us-east-1", role = "primary", vpc_cidr = "10.10.0.0/16", zones = ["us-east-1a", "us-east-1b"] }
    eu-west  = { cloud_region = "eu-west-1", role = "hot-standby", vpc_cidr = "10.20.0.0/16", zones = ["eu-west-1a", "eu-west-1b"] }
    ap-south = { cloud_region = "ap-south-1", role = "warm-standby", vpc_cidr = "10.30.0.0/16", zones = ["ap-south-1a"] }
  }
  # A second estate beside this one (a rebuild rehearsal's) needs networks of its own.
  regions = { for name, r in local.seed_regions : name => merge(r, { vpc_cidr = lookup(var.vpc_cidrs, name, r.vpc_cidr) }) }

  capacity = {
    for name, base in var.capacity : name => {
      db  = coalesce(try(var.capacity_overrides[name].db, null), base.db)
      app = coalesce(try(var.capacity_overrides[name].app, null), base.app)
    }
  }

  # Replication between regions, plus the operators' network.
  allowed_cidrs = concat([for r in local.regions : r.vpc_cidr], var.operator_cidrs)

  common = {
    estate                      = var.estate
    instance_type               = var.instance_type
    allowed_cidrs               = local.allowed_cidrs
    secret_version              = var.secret_version
    secret_recovery_window_days = var.scratch ? 0 : 30
    kms_deletion_window_days    = var.scratch ? 7 : 30
    backup_bucket_force_destroy = var.scratch
    enable_dns_hostnames        = var.enable_dns_hostnames
  }
}

# ---------------------------------------------------------------- providers

provider "aws" {
  alias  = "control"
  region = var.control_region

  skip_credentials_validation = var.aws_provider.skip_credentials_validation
  skip_requesting_account_id  = var.aws_provider.skip_requesting_account_id
  skip_metadata_api_check     = var.aws_provider.skip_metadata_api_check
  s3_use_path_style           = var.aws_provider.s3_use_path_style
}

provider "aws" {
  alias  = "us-east"
  region = local.regions["us-east"].cloud_region

  skip_credentials_validation = var.aws_provider.skip_credentials_validation
  skip_requesting_account_id  = var.aws_provider.skip_requesting_account_id
  skip_metadata_api_check     = var.aws_provider.skip_metadata_api_check
  s3_use_path_style           = var.aws_provider.s3_use_path_style
}

provider "aws" {
  alias  = "eu-west"
  region = local.regions["eu-west"].cloud_region

  skip_credentials_validation = var.aws_provider.skip_credentials_validation
  skip_requesting_account_id  = var.aws_provider.skip_requesting_account_id
  skip_metadata_api_check     = var.aws_provider.skip_metadata_api_check
  s3_use_path_style           = var.aws_provider.s3_use_path_style
}

provider "aws" {
  alias  = "ap-south"
  region = local.regions["ap-south"].cloud_region

  skip_credentials_validation = var.aws_provider.skip_credentials_validation
  skip_requesting_account_id  = var.aws_provider.skip_requesting_account_id
  skip_metadata_api_check     = var.aws_provider.skip_metadata_api_check
  s3_use_path_style           = var.aws_provider.s3_use_path_style
}

# ---------------------------------------------------------------- shared secret values

# Generated in the control region, so a plan never needs the failed region's API.
# Ephemeral: the values reach Secrets Manager (write-only) and nothing else; they
# are sent only when secret_version changes.
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

# ---------------------------------------------------------------- regions

module "us-east" {
  source    = "../../modules/region"
  providers = { aws = aws.us-east }

  name     = "us-east"
  role     = local.regions["us-east"].role
  vpc_cidr = local.regions["us-east"].vpc_cidr
  zones    = local.regions["us-east"].zones
  capacity = local.capacity["us-east"]
  ami_id   = var.ami_ids["us-east"]

  estate                      = local.common.estate
  instance_type               = local.common.instance_type
  allowed_cidrs               = local.common.allowed_cidrs
  db_password                 = ephemeral.aws_secretsmanager_random_password.db.random_password
  app_secret                  = ephemeral.aws_secretsmanager_random_password.app.random_password
  secret_version              = local.common.secret_version
  secret_recovery_window_days = local.common.secret_recovery_window_days
  kms_deletion_window_days    = local.common.kms_deletion_window_days
  backup_bucket_force_destroy = local.common.backup_bucket_force_destroy
  enable_dns_hostnames        = local.common.enable_dns_hostnames
  restore_host                = try(var.restore_hosts["us-east"], null)
  zones_out                   = try(var.zones_out["us-east"], [])
}

module "eu-west" {
  source    = "../../modules/region"
  providers = { aws = aws.eu-west }

  name     = "eu-west"
  role     = local.regions["eu-west"].role
  vpc_cidr = local.regions["eu-west"].vpc_cidr
  zones    = local.regions["eu-west"].zones
  capacity = local.capacity["eu-west"]
  ami_id   = var.ami_ids["eu-west"]

  estate                      = local.common.estate
  instance_type               = local.common.instance_type
  allowed_cidrs               = local.common.allowed_cidrs
  db_password                 = ephemeral.aws_secretsmanager_random_password.db.random_password
  app_secret                  = ephemeral.aws_secretsmanager_random_password.app.random_password
  secret_version              = local.common.secret_version
  secret_recovery_window_days = local.common.secret_recovery_window_days
  kms_deletion_window_days    = local.common.kms_deletion_window_days
  backup_bucket_force_destroy = local.common.backup_bucket_force_destroy
  enable_dns_hostnames        = local.common.enable_dns_hostnames
  restore_host                = try(var.restore_hosts["eu-west"], null)
  zones_out                   = try(var.zones_out["eu-west"], [])
}

module "ap-south" {
  source    = "../../modules/region"
  providers = { aws = aws.ap-south }

  name     = "ap-south"
  role     = local.regions["ap-south"].role
  vpc_cidr = local.regions["ap-south"].vpc_cidr
  zones    = local.regions["ap-south"].zones
  capacity = local.capacity["ap-south"]
  ami_id   = var.ami_ids["ap-south"]

  estate                      = local.common.estate
  instance_type               = local.common.instance_type
  allowed_cidrs               = local.common.allowed_cidrs
  db_password                 = ephemeral.aws_secretsmanager_random_password.db.random_password
  app_secret                  = ephemeral.aws_secretsmanager_random_password.app.random_password
  secret_version              = local.common.secret_version
  secret_recovery_window_days = local.common.secret_recovery_window_days
  kms_deletion_window_days    = local.common.kms_deletion_window_days
  backup_bucket_force_destroy = local.common.backup_bucket_force_destroy
  enable_dns_hostnames        = local.common.enable_dns_hostnames
  restore_host                = try(var.restore_hosts["ap-south"], null)
  zones_out                   = try(var.zones_out["ap-south"], [])
}

check "control_region_is_not_an_estate_region" {
  assert {
    condition     = !contains([for r in local.regions : r.cloud_region], var.control_region)
    error_message = "control_region ${var.control_region} is one of the estate's regions: its failure would take the state backend with it."
  }
}
