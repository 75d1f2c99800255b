output "name" {
  description = "Logical name of the region (the DrRegion tag)."
  value       = var.name
}

output "cloud_region" {
  description = "Cloud region the module was applied in (from the provider)."
  value       = data.aws_region.current.name
}

output "role" {
  description = "DR role of the region."
  value       = var.role
}

output "vpc_id" {
  description = "ID of the region's VPC."
  value       = aws_vpc.this.id
}

output "vpc_cidr" {
  description = "IPv4 CIDR of the region's VPC."
  value       = aws_vpc.this.cidr_block
}

output "subnet_ids" {
  description = "Subnet ID by availability zone."
  value       = { for zone, subnet in aws_subnet.this : zone => subnet.id }
}

output "subnet_cidrs" {
  description = "Subnet CIDR by availability zone."
  value       = local.subnet_cidrs
}

output "security_group_id" {
  description = "ID of the hosts' security group."
  value       = aws_security_group.hosts.id
}

output "launch_template_ids" {
  description = "Launch template ID by role (db, app)."
  value       = { for role, lt in aws_launch_template.this : role => lt.id }
}

output "asg_names" {
  description = "Auto Scaling group names by role (db, app), one per zone in zone order."
  value       = { for role in local.roles : role => [for zone in var.zones : aws_autoscaling_group.this["${role}-${zone}"].name] }
}

output "asg_names_by_zone" {
  description = "Auto Scaling group name by role and zone."
  value       = { for role in local.roles : role => { for zone in var.zones : zone => aws_autoscaling_group.this["${role}-${zone}"].name } }
}

output "capacity" {
  description = "Instances per role the Auto Scaling groups were set to (summed over zones)."
  value       = { for role in local.roles : role => sum([for zone in var.zones : aws_autoscaling_group.this["${role}-${zone}"].desired_capacity]) }
}

output "capacity_by_zone" {
  description = "Instances per role and zone."
  value       = { for role in local.roles : role => { for zone in var.zones : zone => aws_autoscaling_group.this["${role}-${zone}"].desired_capacity } }
}

output "backup_bucket_name" {
  description = "Name of the versioned backup bucket."
  value       = aws_s3_bucket.backups.bucket
}

output "backup_bucket_arn" {
  description = "ARN of the versioned backup bucket."
  value       = aws_s3_bucket.backups.arn
}

output "kms_key_arn" {
  description = "ARN of the region's KMS key (backups and secrets)."
  value       = aws_kms_key.this.arn
}

output "kms_alias_name" {
  description = "Alias of the region's KMS key."
  value       = aws_kms_alias.this.name
}

output "secret_arns" {
  description = "Secrets Manager ARN by secret (db: database credentials JSON, app: application secret). Values are never output."
  value       = { for k, s in aws_secretsmanager_secret.this : k => s.arn }
}

output "secret_names" {
  description = "Secrets Manager name by secret (db, app)."
  value       = { for k, s in aws_secretsmanager_secret.this : k => s.name }
}

output "restore_host" {
  description = "The restore host (instance_id, private_ip, name, zone, run_id), or null when restore_host is unset."
  value = var.restore_host == null ? null : {
    instance_id = module.restore_host[0].instance_id
    private_ip  = module.restore_host[0].private_ip
    name        = module.restore_host[0].name
    zone        = module.restore_host[0].zone
    run_id      = module.restore_host[0].run_id
  }
}
