import base64

from django.contrib import admin
from django.utils.html import format_html, format_html_join

from faces.models import Face, Person


class FaceInline(admin.TabularInline):
    model = Face
    fields = ["thumbnail", "box", "detection_confidence", "model_name", "created_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    @admin.display(description="Face")
    def thumbnail(self, obj):
        return face_thumbnail(obj)


def face_thumbnail(face: Face) -> str:
    crop = bytes(face.crop or b"")
    if not crop:
        return "-"
    return format_html('<img src="data:image/jpeg;base64,{}" height="64" alt="face">', base64.b64encode(crop).decode())


@admin.register(Person)
class PersonAdmin(admin.ModelAdmin):
    list_display = ["name", "organization", "faces_preview", "created_at"]
    list_filter = ["organization"]
    search_fields = ["name", "organization__slug"]
    inlines = [FaceInline]
    readonly_fields = ["organization", "created_at", "updated_at"]

    @admin.display(description="Faces")
    def faces_preview(self, obj):
        return format_html_join("", "{}", ((face_thumbnail(face),) for face in obj.faces.all()[:4]))

    def has_add_permission(self, request):
        return False  # people are registered from photos through the API or the webcam page
