output "instance_id" {
  description = "ID of the restore host's instance; null while its group has not launched it yet."
  value       = try(data.aws_instances.this.ids[0], null)
}

output "private_ip" {
  description = "Private IPv4 address of the restore host (what the inventory connects to); null while its group has not launched it yet."
  value       = try(data.aws_instances.this.private_ips[0], null)
}

output "group_name" {
  description = "Name of the restore host's auto scaling group (of one instance)."
  value       = aws_autoscaling_group.this.name
}

output "name" {
  description = "Name tag of the restore host: <estate>-<dr_region>-restore."
  value       = local.tags["Name"]
}

output "zone" {
  description = "Availability zone the restore host runs in."
  value       = var.zone
}

output "run_id" {
  description = "Run the restore host belongs to (its RestoreRun tag)."
  value       = local.tags["RestoreRun"]
}
