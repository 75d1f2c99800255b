locals {
  modules = {
    us-east  = module.us-east
    eu-west  = module.eu-west
    ap-south = module.ap-south
  }
}

output "regions" {
  description = "Per logical region: cloud region, role, network, Auto Scaling groups, capacity, backup bucket, KMS key and secret names/ARNs (never values)."
  value = {
    for name, m in local.modules : name => {
      cloud_region       = m.cloud_region
      role               = m.role
      vpc_id             = m.vpc_id
      vpc_cidr           = m.vpc_cidr
      subnet_ids         = m.subnet_ids
      subnet_cidrs       = m.subnet_cidrs
      security_group_id  = m.security_group_id
      asg_names          = m.asg_names
      asg_names_by_zone  = m.asg_names_by_zone
      capacity           = m.capacity
      capacity_by_zone   = m.capacity_by_zone
      backup_bucket_name = m.backup_bucket_name
      kms_key_arn        = m.kms_key_arn
      kms_alias_name     = m.kms_alias_name
      secret_names       = m.secret_names
      secret_arns        = m.secret_arns
    }
  }
}

output "capacity" {
  description = "Instances per role and region after this apply (baseline with overrides)."
  value       = { for name, m in local.modules : name => m.capacity }
}

output "restore_hosts" {
  description = "Restore hosts by logical region (instance_id, private_ip, name, zone, run_id); only the regions that have one. Like every output here it reads all three regions, so an apply with -target=module.<region> leaves it as it was (Terraform skips outputs that depend on untargeted modules): find a restore host by its tags (inventory group role_restore, RestoreRun) after a targeted apply."
  value       = { for name, m in local.modules : name => m.restore_host if m.restore_host != null }
}
