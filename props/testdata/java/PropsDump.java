import java.io.ByteArrayInputStream;
import java.io.StringReader;
import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Paths;
import java.util.Properties;
import java.util.TreeMap;

// PropsDump loads each file named on the command line the way the props package
// documents (valid UTF-8 through load(Reader) with a leading BOM removed, anything
// else through load(InputStream)) and prints every key and value as hex UTF-16 units.
public class PropsDump {
    public static void main(String[] args) throws Exception {
        StringBuilder out = new StringBuilder();
        for (String name : args) {
            byte[] data = Files.readAllBytes(Paths.get(name));
            Properties p = new Properties();
            out.append("FILE ").append(name).append('\n');
            try {
                String text = null;
                try {
                    text = StandardCharsets.UTF_8.newDecoder()
                        .onMalformedInput(CodingErrorAction.REPORT)
                        .onUnmappableCharacter(CodingErrorAction.REPORT)
                        .decode(ByteBuffer.wrap(data)).toString();
                } catch (CharacterCodingException e) {
                    text = null;
                }
                if (text != null) {
                    if (text.startsWith("\uFEFF")) {
                        text = text.substring(1);
                    }
                    p.load(new StringReader(text));
                } else {
                    p.load(new ByteArrayInputStream(data));
                }
            } catch (IllegalArgumentException e) {
                out.append("ERR\n");
                continue;
            }
            TreeMap<String, String> sorted = new TreeMap<>();
            for (String k : p.stringPropertyNames()) {
                sorted.put(k, p.getProperty(k));
            }
            for (var e : sorted.entrySet()) {
                out.append("KV ").append(hex(e.getKey())).append(' ').append(hex(e.getValue())).append('\n');
            }
        }
        System.out.print(out);
    }

    static String hex(String s) {
        if (s.isEmpty()) {
            return "-";
        }
        StringBuilder b = new StringBuilder();
        for (int i = 0; i < s.length(); i++) {
            b.append(String.format("%04x", (int) s.charAt(i)));
        }
        return b.toString();
    }
}
