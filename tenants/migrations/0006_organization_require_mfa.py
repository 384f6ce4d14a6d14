from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("tenants", "0005_authenticate_api_key_in_one_call")]

    operations = [
        migrations.AddField(
            model_name="organization",
            name="require_mfa",
            field=models.BooleanField(default=False),
        ),
    ]
