output "instance_id" {
  description = "ID of the restore host's instance."
  value       = aws_instance.this.id
}

output "private_ip" {
  description = "Private IPv4 address of the restore host (what the inventory connects to)."
  value       = aws_instance.this.private_ip
}

output "name" {
  description = "Name tag of the restore host: <estate>-<dr_region>-restore."
  value       = aws_instance.this.tags["Name"]
}

output "zone" {
  description = "Availability zone the restore host runs in."
  value       = aws_instance.this.availability_zone
}

output "run_id" {
  description = "Run the restore host belongs to (its RestoreRun tag)."
  value       = aws_instance.this.tags["RestoreRun"]
}
