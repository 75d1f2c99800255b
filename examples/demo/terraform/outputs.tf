output "marker_path" {
  description = "Path of the file the apply wrote."
  value       = terraform_data.marker.output.path
}

output "marker_id" {
  description = "ID of the terraform_data resource (changes when it is replaced)."
  value       = terraform_data.marker.id
}
